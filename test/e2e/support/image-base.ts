import { cp, mkdir, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { runOk } from '../../testbed/processes.js';

/**
 * A stand-in for `node:24-bookworm-slim`, made without pulling: the running Node and npm at
 * the official image's paths (/usr/local/bin, /usr/local/lib/node_modules/npm), the shared
 * libraries Node links, and busybox for /bin/sh. Import it with `nodeBaseChanges(registry)`,
 * which points npm at the test's lockfile registry (as a company mirror would), so the
 * repository's Dockerfile builds on it unchanged.
 */
export async function buildNodeBaseTarball(opts: { workDir: string; busybox: string }): Promise<string> {
  const rootfs = join(opts.workDir, 'base-rootfs');
  await rm(rootfs, { recursive: true, force: true });
  for (const dir of ['bin', 'usr/bin', 'usr/local/bin', 'usr/local/lib', 'etc', 'tmp', 'root', 'proc', 'sys', 'dev']) {
    await mkdir(join(rootfs, dir), { recursive: true });
  }
  await copyNode(rootfs);
  await copyBusybox(rootfs, opts.busybox);
  await copyNpm(rootfs);
  await writeFile(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  await writeFile(join(rootfs, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  const tarball = join(opts.workDir, 'node-base.tar');
  await runOk('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', tarball, '.']);
  await rm(rootfs, { recursive: true });
  return tarball;
}

/** `docker import` flags: the official image's PATH and CMD, and npm's registry. */
export function nodeBaseChanges(registry: string): string[] {
  return ['--change', 'ENV PATH=/usr/local/bin:/usr/bin:/bin', '--change', `ENV npm_config_registry=${registry} npm_config_update_notifier=false`, '--change', 'CMD ["node"]'];
}

async function copyNode(rootfs: string): Promise<void> {
  const node = await realpath(process.execPath);
  await cp(node, join(rootfs, 'usr/local/bin/node'));
  for (const lib of await linkedLibraries(node)) await cp(await realpath(lib), join(rootfs, lib));
}

/** Paths of the shared libraries (and the program interpreter) a binary loads, from `ldd`. */
async function linkedLibraries(binary: string): Promise<string[]> {
  const out = await runOk('ldd', [binary]);
  return out
    .split('\n')
    .map((line) => /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line)?.[1])
    .filter((path): path is string => path !== undefined);
}

async function copyBusybox(rootfs: string, busybox: string): Promise<void> {
  await cp(busybox, join(rootfs, 'bin/busybox'));
  // npm runs scripts with /bin/sh; its own bin scripts start with `#!/usr/bin/env node`.
  for (const applet of ['sh', 'ls', 'cat', 'rm', 'mkdir', 'ln']) await symlink('busybox', join(rootfs, 'bin', applet));
  await symlink('/bin/busybox', join(rootfs, 'usr/bin/env'));
}

async function copyNpm(rootfs: string): Promise<void> {
  const npmCli = await realpath((await runOk('sh', ['-c', 'command -v npm'])).trim());
  const npmRoot = dirname(dirname(npmCli)); // …/node_modules/npm/bin/npm-cli.js
  await cp(npmRoot, join(rootfs, 'usr/local/lib/node_modules/npm'), { recursive: true });
  await symlink('../lib/node_modules/npm/bin/npm-cli.js', join(rootfs, 'usr/local/bin/npm'));
}
