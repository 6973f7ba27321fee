import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { type ChangesCursor, parseCursor, serializeCursor } from './cursor.js';

/** The cursor stored in `file`, or undefined when there is no such file (a first run). */
export async function readCursorFile(file: string): Promise<ChangesCursor | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return parseCursor(bytes, file);
}

/**
 * Replaces `file` with `cursor` atomically: a temporary file in the same directory, flushed to disk,
 * renamed over the old one, and the directory flushed, so a crash leaves the old cursor or the new
 * one, never a torn file.
 */
export async function writeCursorFile(file: string, cursor: ChangesCursor): Promise<void> {
  await writeFileAtomically(file, serializeCursor(cursor));
}

/** Writes `bytes` to `file` through a flushed temporary file and a rename (see writeCursorFile). */
export async function writeFileAtomically(file: string, bytes: Uint8Array): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  const temporary = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temporary, 'wx');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  await syncDirectory(dir);
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (error) {
    // Some file systems cannot fsync a directory; the rename itself is still atomic there.
    if (!['EINVAL', 'EISDIR', 'EPERM'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
  } finally {
    await handle.close();
  }
}
