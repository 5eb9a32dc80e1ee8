// Snapshot file paths: checked here so that a missing file or an unwritable directory is an
// InvalidArgumentError before any VM work (the VMM checks the file's contents).
import * as fs from 'fs';
import * as path from 'path';

import { InvalidArgumentError } from './errors';

/** What writing a snapshot took. */
export interface SnapshotInfo {
  /** The file's size (it is sparse: zero pages take no disk space). */
  bytes: number;
  /** Time to write and sync it, in microseconds. */
  us: number;
  path: string;
}

/** An existing snapshot file, as an absolute path. */
export function snapshotToRead(file: string): string {
  if (typeof file !== 'string' || !file) throw new InvalidArgumentError('InvalidArgument', 'a snapshot path is required');
  const abs = path.resolve(file);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch (e) {
    throw new InvalidArgumentError('InvalidArgument', `cannot read snapshot ${abs}: ${(e as Error).message}`);
  }
  if (!st.isFile()) throw new InvalidArgumentError('InvalidArgument', `snapshot ${abs} is not a file`);
  return abs;
}

/** Where to write a snapshot, as an absolute path; its directory must exist and be writable. */
export function snapshotToWrite(file: string): string {
  if (typeof file !== 'string' || !file) throw new InvalidArgumentError('InvalidArgument', 'a snapshot path is required');
  const abs = path.resolve(file);
  try {
    fs.accessSync(path.dirname(abs), fs.constants.W_OK);
  } catch (e) {
    throw new InvalidArgumentError('InvalidArgument', `cannot write snapshot ${abs}: ${(e as Error).message}`);
  }
  return abs;
}
