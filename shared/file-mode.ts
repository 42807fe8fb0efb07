import { statSync } from 'node:fs';

/**
 * A secret file's permission bits when group or others may access it (as ssh judges key files),
 * else undefined: its secrets may have leaked, which is worth a warning.
 */
export function looseMode(path: string): number | undefined {
  const mode = statSync(path).mode & 0o777;
  return mode & 0o077 ? mode : undefined;
}
