import { Option } from 'commander';
import { COMMON_OPTIONS } from '../app/commonOptions.js';

/** A commander Option for a shared option (app/commonOptions.ts); `help` prefixes its own text. */
export function commonOption(name: keyof typeof COMMON_OPTIONS, help?: string): Option {
  const spec = COMMON_OPTIONS[name];
  const option = new Option(
    'arg' in spec ? `${spec.flag} ${spec.arg}` : spec.flag,
    help ? `${help}: ${spec.help}` : spec.help,
  );
  return 'env' in spec ? option.env(spec.env) : option;
}
