import { describe, expect, it } from 'vitest';
import { parseTimeOption } from '../../../src/app/commonOptions.js';

describe('parseTimeOption', () => {
  const now = Date.UTC(2026, 10, 22, 12, 0, 0);

  it('reads ISO-8601 times with a zone, and dates as UTC midnight', () => {
    expect(parseTimeOption('2026-11-22T10:00:00Z', now)).toBe(Date.UTC(2026, 10, 22, 10));
    expect(parseTimeOption('2026-11-22T10:00Z', now)).toBe(Date.UTC(2026, 10, 22, 10));
    expect(parseTimeOption('2026-11-22T10:00:00.250Z', now)).toBe(Date.UTC(2026, 10, 22, 10, 0, 0, 250));
    expect(parseTimeOption('2026-11-22T11:00:00+01:00', now)).toBe(Date.UTC(2026, 10, 22, 10));
    expect(parseTimeOption('2026-11-22', now)).toBe(Date.UTC(2026, 10, 22));
  });

  it('reads durations as that long before now, with or without a minus', () => {
    expect(parseTimeOption('2h', now)).toBe(now - 2 * 3_600_000);
    expect(parseTimeOption('-2h', now)).toBe(now - 2 * 3_600_000);
    expect(parseTimeOption('1h30m', now)).toBe(now - 90 * 60_000);
    expect(parseTimeOption('1d', now)).toBe(now - 86_400_000);
  });

  it('reads 13-digit numbers as epoch milliseconds', () => {
    expect(parseTimeOption('1795341600000', now)).toBe(1_795_341_600_000);
  });

  it('refuses local times, other bare numbers (epoch seconds?) and anything else', () => {
    for (const bad of [
      '2026-11-22T10:00:00',
      '1763800000',
      '17958000000000',
      '90',
      '--2h',
      '-1795341600000',
      '',
      'yesterday',
      '2h ago',
      '2026-13-01',
      '2026-02-30',
      '2026-11-22T25:00Z',
    ])
      expect(parseTimeOption(bad, now), bad).toBeUndefined();
  });
});
