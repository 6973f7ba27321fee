import { describe, expect, it } from 'vitest';
import { RUN_OPTIONS } from '../../../src/app/runConfig.js';
import { buildProgram } from '../../../src/cli/main.js';

describe('run command', () => {
  it('offers every run option as its flag, documenting its variable and default', () => {
    const run = buildProgram().commands.find((c) => c.name() === 'run')!;
    const options = new Map(run.options.map((o) => [o.long, o]));
    expect([...options.keys()].sort()).toEqual(
      Object.values(RUN_OPTIONS)
        .map((s) => s.flag)
        .sort(),
    );
    for (const spec of Object.values(RUN_OPTIONS)) {
      const option = options.get(spec.flag)!;
      expect(option.description).toContain(`env ${spec.env}`);
      if ('default' in spec) expect(option.description).toContain(`default ${spec.default}`);
      // Flags with an argument take a value; the two switches take none.
      expect(option.required).toBe('arg' in spec);
    }
  });
});
