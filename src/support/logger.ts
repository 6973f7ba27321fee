import { pino } from 'pino';

/** The logging surface the pipeline uses: structured details first, then a fixed message. */
export interface Logger {
  debug(details: Record<string, unknown>, message: string): void;
  info(details: Record<string, unknown>, message: string): void;
  warn(details: Record<string, unknown>, message: string): void;
  error(details: Record<string, unknown>, message: string): void;
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  /**
   * Append the JSON lines to this file instead of stdout (created with its directory if missing;
   * written synchronously, so nothing is lost when the process exits). The local stack uses it to
   * keep the terminal for its status line.
   */
  file?: string;
}

/**
 * JSON lines on stdout (pino), or in `options.file`. Details carry shard, sequence number, window
 * and object key; never item contents (images, keys) and never credentials.
 */
export function createLogger(
  level: LogLevel,
  bindings: Record<string, unknown> = {},
  options: LoggerOptions = {},
): Logger {
  const settings = {
    level,
    base: bindings,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (options.file === undefined) return pino(settings);
  return pino(settings, pino.destination({ dest: options.file, mkdir: true, sync: true }));
}

/** A logger that drops everything: the default for library use and tests. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
