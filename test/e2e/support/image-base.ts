import { cp, mkdir, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { runOk } from '../../testbed/processes.js';

/**
 * A stand-in for `node:20-bookworm-slim`, made without a registry: this machine's Node and npm
 * at the official image's paths (/usr/local/bin, /usr/local/lib/node_modules/npm), the shared
 * libraries Node links, busybox for /bin/sh, and an npm cache holding every package in the
 * lockfile with a global npmrc that sets `offline=true`. The repository's Dockerfile builds on it
 * unchanged: its `npm ci` reads the cache because the base image says so, as a mirror would.
 */
export async function buildNodeBaseTarball(opts: { workDir: string; lockfile: string; busybox: string }): Promise<string> {
  const rootfs = join(opts.workDir, 'base-rootfs');
  await rm(rootfs, { recursive: true, force: true });
  for (const dir of ['bin', 'usr/bin', 'usr/local/bin', 'usr/local/lib', 'usr/local/etc', 'etc', 'tmp', 'root', 'proc', 'sys', 'dev']) {
    await mkdir(join(rootfs, dir), { recursive: true });
  }
  await copyNode(rootfs);
  await copyBusybox(rootfs, opts.busybox);
  await copyNpm(rootfs);
  const cacheDir = '/var/cache/npm-offline';
  await copyNpmCacheFor(opts.lockfile, join(rootfs, cacheDir));
  await writeFile(join(rootfs, 'usr/local/etc/npmrc'), `cache=${cacheDir}\noffline=true\nupdate-notifier=false\n`);
  await writeFile(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  await writeFile(join(rootfs, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  const tarball = join(opts.workDir, 'node-base.tar');
  await runOk('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', tarball, '.']);
  await rm(rootfs, { recursive: true });
  return tarball;
}

/** `docker import` flags that give the tarball the official image's environment. */
export const NODE_BASE_CHANGES = ['--change', 'ENV PATH=/usr/local/bin:/usr/bin:/bin', '--change', 'CMD ["node"]'];

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

/**
 * The index and the tarballs of every package in the lockfile, from this machine's npm cache
 * (cacache stores content by digest: content-v2/<algo>/<hex[0..2]>/<hex[2..4]>/<rest>).
 */
async function copyNpmCacheFor(lockfile: string, target: string): Promise<void> {
  const source = join((await runOk('npm', ['config', 'get', 'cache'])).trim(), '_cacache');
  await cp(join(source, 'index-v5'), join(target, 'index-v5'), { recursive: true });
  const lock = JSON.parse(await readFile(lockfile, 'utf8')) as { packages: Record<string, { integrity?: string; optional?: boolean }> };
  const missing: string[] = [];
  for (const [name, entry] of Object.entries(lock.packages)) {
    if (!entry.integrity) continue;
    const [algo, b64] = entry.integrity.split(/\s+/)[0]!.split('-', 2) as [string, string];
    const hex = Buffer.from(b64, 'base64').toString('hex');
    const rel = join('content-v2', algo, hex.slice(0, 2), hex.slice(2, 4), hex.slice(4));
    // Optional packages for other platforms (e.g. @esbuild/darwin-arm64) were never fetched here, nor are they needed.
    await cp(join(source, rel), join(target, rel)).catch(() => entry.optional || missing.push(name));
  }
  if (missing.length > 0) {
    throw new Error(`the npm cache (${source}) lacks ${missing.length} locked packages, e.g. ${missing.slice(0, 3).join(', ')}: run \`npm ci\` first`);
  }
}
