import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChangesCursor } from '../../../src/read/cursor.js';
import { readCursorFile, writeCursorFile } from '../../../src/read/cursorFile.js';

const cursor: ChangesCursor = {
  cursorVersion: 1,
  table: 'orders',
  destination: 's3://bucket/changelog',
  windowMs: 60_000,
  deliveredThrough: '2026-11-22T10:05:00.000Z',
  versions: { '2026-11-22T10:01:00.000Z': 2 },
  revisionsThrough: '2026-11-22T12:00:00.000Z',
  batch: 3,
  updatedAt: '2026-11-22T12:00:00.000Z',
};

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('cursor files', () => {
  it('reads nothing before the first write, then what was written; leaves no temporary file', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cursor-'));
    const file = path.join(dir, 'orders.cursor.json');
    expect(await readCursorFile(file)).toBeUndefined();
    await writeCursorFile(file, cursor);
    await writeCursorFile(file, { ...cursor, batch: 4 });
    expect(await readCursorFile(file)).toEqual({ ...cursor, batch: 4 });
    expect(await readdir(dir)).toEqual(['orders.cursor.json']);
    expect(JSON.parse(await readFile(file, 'utf8')).batch).toBe(4);
  });

  it('names the file and every problem of a bad cursor', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cursor-'));
    const file = path.join(dir, 'bad.json');
    await writeFile(file, JSON.stringify({ ...cursor, batch: -1, extra: true }));
    await expect(readCursorFile(file)).rejects.toThrow(`cursor ${file} does not match the schema`);
    await writeFile(file, '{');
    await expect(readCursorFile(file)).rejects.toThrow(`cursor ${file} is not valid JSON`);
  });

  it('fails a write into a missing directory and leaves no file behind', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cursor-'));
    await expect(writeCursorFile(path.join(dir, 'missing', 'c.json'), cursor)).rejects.toThrow(/ENOENT/);
    expect(await readdir(dir)).toEqual([]);
  });
});
