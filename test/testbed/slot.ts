import { appendFile, mkdir, readFile, readdir, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isAlive, killPids, run, startTimeOf, withDescendants } from './processes.js';
import { listOwnNetwork, removeNetwork, slotsWithForwardRule } from './network.js';
import { MAX_SLOTS, OWN_NAME, STATE_ROOT, slotDir } from './layout.js';

/**
 * A slot is claimed by creating its directory (atomic) and recording the owning process there.
 * A slot whose owner is gone is stale: whatever it left (processes, mounts, namespaces, links,
 * iptables rule, cgroups, files) is removed before a new run starts. Every process a run starts
 * is recorded (PID and kernel start time), so a later run can stop it by PID after a crash.
 */

const OWNER_FILE = 'owner';
const PROCESSES_FILE = 'processes';
/** A slot directory without an owner file younger than this is being claimed right now. */
const CLAIM_WINDOW_MS = 30_000;

async function processRecord(pid: number): Promise<string> {
  return `${pid} ${(await startTimeOf(pid)) ?? '?'}\n`;
}

/** PIDs from a record file whose processes are still the ones recorded (not a reused PID). */
async function recordedAlive(file: string): Promise<number[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const alive: number[] = [];
  for (const line of text.split('\n').filter(Boolean)) {
    const [pid, startTime] = line.split(' ').map(String);
    if ((await startTimeOf(Number(pid))) === startTime && (await isAlive(Number(pid)))) alive.push(Number(pid));
  }
  return alive;
}

async function isStale(slot: number): Promise<boolean> {
  const dir = slotDir(slot);
  const owner = await recordedAlive(join(dir, OWNER_FILE));
  if (owner.length > 0) return false;
  const hasOwnerFile = await stat(join(dir, OWNER_FILE)).then(() => true, () => false);
  const age = Date.now() - (await stat(dir)).mtimeMs;
  return hasOwnerFile || age > CLAIM_WINDOW_MS;
}

/** True when the slot's owner record names this process (the slot was not released and claimed again). */
export async function slotOwnedBy(slot: number, pid: number): Promise<boolean> {
  const record = await readFile(join(slotDir(slot), OWNER_FILE), 'utf8').catch(() => '');
  return record.split(' ')[0] === String(pid);
}

export async function recordProcess(slot: number, pid: number): Promise<void> {
  await appendFile(join(slotDir(slot), PROCESSES_FILE), await processRecord(pid));
}

export async function claimSlot(): Promise<number> {
  await mkdir(STATE_ROOT, { recursive: true });
  await reclaimStaleSlots();
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    try {
      await mkdir(slotDir(slot));
    } catch {
      continue;
    }
    await writeFile(join(slotDir(slot), OWNER_FILE), await processRecord(process.pid));
    return slot;
  }
  throw new Error(`testbed: all ${MAX_SLOTS} slots in ${STATE_ROOT} are in use by live runs`);
}

/**
 * Cleans every slot whose owner is gone, and every ptl* namespace, link or rule without a slot
 * directory. Resolves with the slots it cleaned.
 */
export async function reclaimStaleSlots(): Promise<number[]> {
  const dirs = await readdir(STATE_ROOT).catch(() => []);
  const withDir = new Set(dirs.filter((name) => /^\d+$/.test(name)).map(Number));
  const { namespaces, links } = await listOwnNetwork(OWN_NAME);
  const named = [...namespaces, ...links].map((name) => Number(OWN_NAME.exec(name)?.[1]));
  const orphans = [...named, ...(await slotsWithForwardRule(OWN_NAME))].filter((slot) => !withDir.has(slot));
  const stale = new Set(orphans);
  for (const slot of withDir) if (await isStale(slot)) stale.add(slot);
  for (const slot of stale) await releaseSlot(slot);
  return [...stale];
}

/** Removes everything of a slot. Used by a run's own teardown and for a crashed run's leftovers. */
export async function releaseSlot(slot: number): Promise<void> {
  const mine = new RegExp(`^ptl${slot}(?:-[a-z][a-z0-9]*)?$`);
  const { namespaces, links } = await listOwnNetwork(mine);
  await killSlotProcesses(slot, namespaces);
  await unmountUnder(slotDir(slot));
  await removeNetwork(slot, namespaces, links);
  await removeCgroups(mine);
  await rm(slotDir(slot), { recursive: true, force: true });
}

/** Recorded processes and everything inside the slot's namespaces, with all their descendants. */
async function killSlotProcesses(slot: number, namespaces: readonly string[]): Promise<void> {
  const roots = await recordedAlive(join(slotDir(slot), PROCESSES_FILE));
  for (const ns of namespaces) {
    const { stdout } = await run('ip', ['netns', 'pids', ns]);
    roots.push(...stdout.split('\n').filter(Boolean).map(Number));
  }
  if (roots.length > 0) await killPids(await withDescendants(roots));
}

function mountPoints(mountinfo: string): string[] {
  return mountinfo
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .map((path) => path.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))));
}

/** Unmounts what a killed dockerd left mounted (overlays, netns handles, the data root), deepest first. */
async function unmountUnder(dir: string): Promise<void> {
  const under = mountPoints(await readFile('/proc/self/mountinfo', 'utf8'))
    .filter((path) => path === dir || path.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const path of under) await run('umount', ['-l', path]);
}

async function subdirectories(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isDirectory()).map((entry) => join(dir, entry.name));
}

async function removeTree(dir: string): Promise<void> {
  for (const child of await subdirectories(dir)) await removeTree(child);
  await rmdir(dir).catch(() => undefined);
}

/** Removes the (empty) cgroups under the engines' `--cgroup-parent`, in every hierarchy. */
async function removeCgroups(match: RegExp): Promise<void> {
  const root = '/sys/fs/cgroup';
  for (const hierarchy of [root, ...(await subdirectories(root))]) {
    for (const dir of await subdirectories(hierarchy)) {
      if (match.test(dir.slice(hierarchy.length + 1))) await removeTree(dir);
    }
  }
}
