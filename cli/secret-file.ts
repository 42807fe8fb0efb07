import { looseMode } from '../shared/file-mode.js';
import { readFlagFile } from './flags.js';

/** Receives a warning about a secret file; the CLI passes its logger's warn. */
export type Warn = (fields: Record<string, unknown>, msg: string) => void;

/**
 * A file of secrets named by a flag: one per line, blank lines and `#` comments skipped.
 * A file group or others can read is still used, with a warning (its secrets may have leaked).
 */
export function readSecretLines(flag: string, path: string, warn: Warn): string[] {
  const lines = readFlagFile(flag, path)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const mode = looseMode(path);
  if (mode !== undefined) {
    warn({ file: path, mode: `0${mode.toString(8)}` }, `--${flag}: the file is readable by group or others; make it readable by the aggregator's user only (chmod 600)`);
  }
  return lines;
}
