import { constants } from 'node:fs';
import { access, open, realpath } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { run } from './processes.js';

/** Debian packages the testbed needs, by the command that shows each is present. */
const PACKAGES: ReadonlyArray<{ pkg: string; commands: readonly string[] }> = [
  { pkg: 'docker.io', commands: ['dockerd', 'docker', 'containerd', 'runc'] },
  { pkg: 'busybox-static', commands: ['busybox'] },
  { pkg: 'iproute2', commands: ['ip'] },
  { pkg: 'iptables', commands: ['iptables'] },
  { pkg: 'dnsutils', commands: ['dig'] },
  { pkg: 'util-linux', commands: ['nsenter'] },
  { pkg: 'procps', commands: ['sysctl', 'ps'] },
  { pkg: 'tar', commands: ['tar'] },
];

async function findCommand(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

/** True when the ELF file has no program interpreter, i.e. runs in an image without a libc. */
async function isStaticElf(path: string): Promise<boolean> {
  const file = await open(await realpath(path), 'r');
  try {
    const header = Buffer.alloc(64);
    await file.read(header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2) return false; // 64-bit ELF only.
    const phoff = Number(header.readBigUInt64LE(0x20));
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    const table = Buffer.alloc(phentsize * phnum);
    await file.read(table, 0, table.length, phoff);
    const PT_INTERP = 3;
    return Array.from({ length: phnum }, (_, i) => table.readUInt32LE(i * phentsize)).every((type) => type !== PT_INTERP);
  } finally {
    await file.close();
  }
}

async function missingPackages(): Promise<string[]> {
  const missing: string[] = [];
  for (const { pkg, commands } of PACKAGES) {
    const found = await Promise.all(commands.map(findCommand));
    if (found.some((path) => path === undefined)) missing.push(pkg);
  }
  const busybox = await findCommand('busybox');
  if (busybox !== undefined && !(await isStaticElf(busybox))) missing.push('busybox-static');
  return missing;
}

async function aptInstall(packages: readonly string[]): Promise<string | undefined> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { env, timeoutMs: 600_000 });
  let result = await install();
  if (result.code !== 0) {
    await run('apt-get', ['update'], { env, timeoutMs: 600_000 });
    result = await install();
  }
  return result.code === 0 ? undefined : `apt-get install ${packages.join(' ')} failed:\n${result.stderr.trim()}`;
}

/**
 * Makes sure the testbed can run: root, Linux, the packages above (installed with apt-get when
 * missing). Resolves with undefined when ready, else with the reason it cannot run.
 */
export async function ensurePrerequisites(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `the testbed needs Linux network namespaces (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'the testbed needs root (network namespaces, bridges, iptables, dockerd)';
  const missing = await missingPackages();
  if (missing.length === 0) return undefined;
  if ((await findCommand('apt-get')) === undefined) return `missing packages ${missing.join(', ')} and no apt-get to install them`;
  const failure = await aptInstall([...new Set(missing)]);
  if (failure !== undefined) return failure;
  const still = await missingPackages();
  return still.length === 0 ? undefined : `still missing after apt-get install: ${still.join(', ')}`;
}

export async function busyboxPath(): Promise<string> {
  const path = await findCommand('busybox');
  if (path === undefined) throw new Error('busybox not found');
  return path;
}
