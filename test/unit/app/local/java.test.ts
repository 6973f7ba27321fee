import { describe, expect, it } from 'vitest';
import {
  checkJava,
  javaProblemMessage,
  parseJavaVersion,
  type RunJavaVersion,
} from '../../../../src/app/local/java.js';

describe('parseJavaVersion', () => {
  it.each([
    [
      'openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment (build 17.0.15+6-Debian-1deb12u1)',
      17,
      '17.0.15',
    ],
    ['openjdk version "21" 2023-09-19\nOpenJDK Runtime Environment (build 21+35-2513)', 21, '21'],
    ['java version "1.8.0_292"\nJava(TM) SE Runtime Environment (build 1.8.0_292-b10)', 8, '1.8.0_292'],
    ['openjdk version "11.0.2" 2019-01-15', 11, '11.0.2'],
    ['java version "25-ea" 2025-09-16', 25, '25-ea'],
    ['Picked up JAVA_TOOL_OPTIONS: -Xmx1g\nopenjdk version "17.0.2" 2022-01-18', 17, '17.0.2'],
    ['openjdk 21.0.3 2024-04-16 LTS', 21, '21.0.3'], // `java --version` style
  ])('%j is Java %i', (output, major, version) => {
    expect(parseJavaVersion(output)).toEqual({ major, version });
  });

  it('is undefined for output without a version', () => {
    expect(parseJavaVersion('Error: could not find libjava.so')).toBeUndefined();
    expect(parseJavaVersion('')).toBeUndefined();
  });
});

const fakeJava =
  (answers: Record<string, string | undefined>): RunJavaVersion =>
  (command) => {
    const output = answers[command];
    return output === undefined ? undefined : { output };
  };

const JAVA_17 = 'openjdk version "17.0.15" 2025-04-15';
const JAVA_11 = 'openjdk version "11.0.22" 2024-01-16';

describe('checkJava', () => {
  it('uses java on PATH when JAVA_HOME is not set', () => {
    const check = checkJava({}, fakeJava({ java: JAVA_17 }), 'linux');
    expect(check).toEqual({
      ok: true,
      command: 'java',
      version: { major: 17, version: '17.0.15' },
      where: 'PATH',
    });
  });

  it('prefers JAVA_HOME, and then does not look at PATH', () => {
    const check = checkJava(
      { JAVA_HOME: '/opt/jdk21' },
      fakeJava({ '/opt/jdk21/bin/java': 'openjdk version "21"', java: JAVA_11 }),
      'linux',
    );
    expect(check).toMatchObject({
      ok: true,
      command: '/opt/jdk21/bin/java',
      where: 'JAVA_HOME',
      version: { major: 21 },
    });
  });

  it('falls back to PATH when JAVA_HOME has no java', () => {
    const check = checkJava({ JAVA_HOME: '/nowhere' }, fakeJava({ java: JAVA_17 }), 'linux');
    expect(check).toMatchObject({ ok: true, command: 'java', where: 'PATH' });
  });

  it('says no java was found, and how to install it', () => {
    const check = checkJava({}, fakeJava({}), 'linux');
    expect(check.ok).toBe(false);
    if (check.ok) return;
    expect(check.message).toContain(
      'DynamoDB Local needs Java 17 or newer, and no `java` was found on PATH; JAVA_HOME is not set.',
    );
    expect(check.message).toContain('sudo apt-get install openjdk-17-jre-headless');
    expect(check.message).toContain('brew install openjdk@17');
    expect(check.message).toContain('https://adoptium.net');
  });

  it('says which Java is too old', () => {
    const check = checkJava({}, fakeJava({ java: 'java version "1.8.0_292"' }), 'linux');
    expect(check.ok).toBe(false);
    if (check.ok) return;
    expect(check.message).toMatch(
      /^DynamoDB Local needs Java 17 or newer, and `java` on PATH is Java 8 \(1\.8\.0_292\), which is too old;/,
    );
  });

  it('reports both JAVA_HOME and PATH when neither works', () => {
    const check = checkJava(
      { JAVA_HOME: '/opt/jdk11' },
      fakeJava({ '/opt/jdk11/bin/java': JAVA_11 }),
      'linux',
    );
    expect(check.ok).toBe(false);
    if (check.ok) return;
    expect(check.message.split('\n')[0]).toBe(
      'DynamoDB Local needs Java 17 or newer, and JAVA_HOME (/opt/jdk11) has Java 11 (11.0.22), which is too old; no `java` was found on PATH.',
    );
  });

  it('names a java that prints no version', () => {
    const message = javaProblemMessage(
      [
        {
          where: 'PATH',
          command: 'java',
          status: 'unreadable',
          output: 'Error occurred during initialization of VM\nmore',
        },
      ],
      undefined,
    );
    expect(message.split('\n')[0]).toBe(
      'DynamoDB Local needs Java 17 or newer, and `java -version` did not print a version (Error occurred during initialization of VM); JAVA_HOME is not set.',
    );
  });

  it('uses java.exe under JAVA_HOME on Windows', () => {
    const seen: string[] = [];
    checkJava(
      { JAVA_HOME: 'C:\\jdk' },
      (command) => {
        seen.push(command);
        return undefined;
      },
      'win32',
    );
    expect(seen[0]).toMatch(/java\.exe$/);
  });
});
