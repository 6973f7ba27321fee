import { spawnSync } from 'node:child_process';
import path from 'node:path';

/*
 * DynamoDB Local is a Java program and needs Java 17 or newer. The local stack checks for it
 * before starting anything, so a newcomer without Java gets a message saying what to install
 * instead of a stack trace from a failed spawn.
 */

export const MIN_JAVA_MAJOR = 17;

export interface JavaVersion {
  /** As printed, e.g. `17.0.15` or `1.8.0_292`. */
  version: string;
  /** The feature release: 8 for `1.8.0_292`, 17 for `17.0.15`, 21 for `21`. */
  major: number;
}

/**
 * Reads the version out of `java -version` output (which goes to stderr), e.g.
 * `openjdk version "17.0.15" 2025-04-15`, `java version "1.8.0_292"`, `openjdk version "21" 2023-09-19`.
 */
export function parseJavaVersion(output: string): JavaVersion | undefined {
  const match =
    /version "([^"]+)"/.exec(output) ?? /^(?:openjdk|java) (\d+(?:[._+-][\w.+-]*)?)/m.exec(output);
  if (!match) return undefined;
  const version = match[1]!;
  const parts = /^(\d+)(?:\.(\d+))?/.exec(version);
  if (!parts) return undefined;
  const first = Number(parts[1]);
  // Up to Java 8 the scheme was 1.<major>.
  const major = first === 1 && parts[2] !== undefined ? Number(parts[2]) : first;
  return { version, major };
}

/** What was found at one place Java may be (JAVA_HOME or PATH). */
export type JavaProbe =
  | { where: 'JAVA_HOME' | 'PATH'; command: string; status: 'ok' | 'too-old'; version: JavaVersion }
  | { where: 'JAVA_HOME' | 'PATH'; command: string; status: 'missing' }
  | { where: 'JAVA_HOME' | 'PATH'; command: string; status: 'unreadable'; output: string };

export type JavaCheck =
  | {
      ok: true;
      /** `java` (found on PATH) or the absolute path under JAVA_HOME. */
      command: string;
      version: JavaVersion;
      where: 'JAVA_HOME' | 'PATH';
    }
  | { ok: false; message: string; probes: JavaProbe[] };

/** Runs `<command> -version`; returns its output, or undefined when the command does not exist. */
export type RunJavaVersion = (command: string) => { output: string } | undefined;

const runJavaVersion: RunJavaVersion = (command) => {
  const result = spawnSync(command, ['-version'], { encoding: 'utf8', timeout: 20_000 });
  if (result.error !== undefined) {
    const code = (result.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR') return undefined;
    return { output: String(result.error.message) };
  }
  return { output: `${result.stderr ?? ''}${result.stdout ?? ''}` };
};

function probe(where: 'JAVA_HOME' | 'PATH', command: string, run: RunJavaVersion): JavaProbe {
  const result = run(command);
  if (result === undefined) return { where, command, status: 'missing' };
  const version = parseJavaVersion(result.output);
  if (version === undefined) return { where, command, status: 'unreadable', output: result.output.trim() };
  return { where, command, status: version.major >= MIN_JAVA_MAJOR ? 'ok' : 'too-old', version };
}

/**
 * Finds a Java 17+: `$JAVA_HOME/bin/java` when JAVA_HOME is set, else (or when that one is missing
 * or too old) `java` on PATH. Never throws: a failed check carries the message to print.
 */
export function checkJava(
  env: NodeJS.ProcessEnv = process.env,
  run: RunJavaVersion = runJavaVersion,
  platform: NodeJS.Platform = process.platform,
): JavaCheck {
  const probes: JavaProbe[] = [];
  const javaHome = env.JAVA_HOME?.trim();
  if (javaHome) {
    const command = path.join(javaHome, 'bin', platform === 'win32' ? 'java.exe' : 'java');
    probes.push(probe('JAVA_HOME', command, run));
  }
  if (probes[0]?.status !== 'ok') probes.push(probe('PATH', 'java', run));
  const found = probes.find((p) => p.status === 'ok');
  if (found?.status === 'ok') {
    return { ok: true, command: found.command, version: found.version, where: found.where };
  }
  return { ok: false, message: javaProblemMessage(probes, javaHome), probes };
}

/** The message for a missing or unusable Java: what was found, and how to install Java 17. */
export function javaProblemMessage(probes: readonly JavaProbe[], javaHome: string | undefined): string {
  const found = probes.map((p): string => {
    const place = p.where === 'JAVA_HOME' ? `JAVA_HOME (${javaHome}) has` : '`java` on PATH is';
    if (p.status === 'missing') {
      return p.where === 'JAVA_HOME'
        ? `JAVA_HOME is ${javaHome}, but it has no bin/java`
        : 'no `java` was found on PATH';
    }
    if (p.status === 'unreadable') {
      const what = p.where === 'JAVA_HOME' ? `\`${p.command} -version\`` : '`java -version`';
      return `${what} did not print a version (${firstLine(p.output)})`;
    }
    return `${place} Java ${p.version.major} (${p.version.version})${p.status === 'too-old' ? ', which is too old' : ''}`;
  });
  if (javaHome === undefined || javaHome === '') found.push('JAVA_HOME is not set');
  return [
    `DynamoDB Local needs Java ${MIN_JAVA_MAJOR} or newer, and ${found.join('; ')}.`,
    'Install it, then run this again:',
    '  Debian/Ubuntu:  sudo apt-get install openjdk-17-jre-headless',
    '  Fedora/RHEL:    sudo dnf install java-17-openjdk-headless',
    '  macOS:          brew install openjdk@17   (then put it on PATH or set JAVA_HOME, as brew says)',
    '  Windows:        winget install Microsoft.OpenJDK.17',
    '  anywhere else:  a Temurin 17+ build from https://adoptium.net',
    'Java is needed only by `local` (and the tests); `run` against AWS does not use it.',
  ].join('\n');
}

function firstLine(text: string): string {
  const line = text.split('\n')[0]?.trim() ?? '';
  return line === '' ? 'no output' : line.length > 120 ? `${line.slice(0, 117)}...` : line;
}
