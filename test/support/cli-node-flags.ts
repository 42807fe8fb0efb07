import { readFileSync } from 'node:fs';

/**
 * The Node flags a CLI file's shebang (`#!/usr/bin/env -S node FLAGS`) gives it: what `portolan`
 * runs with when started as users start it (its bin, the image's entrypoint, the systemd units).
 * Tests and benchmarks that run `node <file>` pass these too, so they measure that same process.
 */
export function cliNodeFlags(file: string): string[] {
  const first = readFileSync(file, 'utf8').split('\n', 1)[0]!;
  const m = /^#!\/usr\/bin\/env(?: -S)? node((?: --[\w-]+(?:=\S+)?)*)\s*$/.exec(first);
  if (!m) throw new Error(`${file}: unexpected shebang ${JSON.stringify(first)}`);
  return m[1]!.split(' ').filter(Boolean);
}
