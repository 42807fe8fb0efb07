import { run, runOk } from './processes.js';
import { bridgeName, gatewayAddress, type HostLayout } from './layout.js';

/**
 * The test network: one bridge in the root namespace holding the gateway address, one namespace
 * per host joined to it by a veth pair. Frames between bridge ports pass the root namespace's
 * FORWARD chain (br_netfilter), where another Docker engine may have set the policy to DROP:
 * hence our own ACCEPT rule for the bridge.
 */

function forwardRule(slot: number): string[] {
  const bridge = bridgeName(slot);
  return ['FORWARD', '-i', bridge, '-o', bridge, '-j', 'ACCEPT'];
}

export async function createBridge(slot: number): Promise<void> {
  const bridge = bridgeName(slot);
  await runOk('ip', ['link', 'add', bridge, 'type', 'bridge']);
  await runOk('ip', ['addr', 'add', `${gatewayAddress(slot)}/24`, 'dev', bridge]);
  await runOk('ip', ['link', 'set', bridge, 'up']);
  await runOk('iptables', ['-w', '-I', ...forwardRule(slot)]);
}

export async function createHostNetwork(slot: number, host: HostLayout): Promise<void> {
  const inNs = (...args: string[]) => runOk('ip', ['-n', host.ns, ...args]);
  await runOk('ip', ['netns', 'add', host.ns]);
  await runOk('ip', ['link', 'add', host.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.ns]);
  await runOk('ip', ['link', 'set', host.veth, 'master', bridgeName(slot), 'up']);
  await inNs('addr', 'add', `${host.address}/24`, 'dev', 'eth0');
  await inNs('link', 'set', 'lo', 'up');
  await inNs('link', 'set', 'eth0', 'up');
  await inNs('route', 'add', 'default', 'via', gatewayAddress(slot));
}

/** Takes the host's link to the bridge down (or up again): a network partition without touching the host. */
export async function setHostLink(host: HostLayout, up: boolean): Promise<void> {
  await runOk('ip', ['link', 'set', host.veth, up ? 'up' : 'down']);
}

/** Removes namespaces, veths, the bridge and the FORWARD rule of a slot; what is already gone is skipped, so two cleaners may race. */
export async function removeNetwork(slot: number, namespaces: readonly string[], links: readonly string[]): Promise<void> {
  for (const ns of namespaces) await run('ip', ['netns', 'delete', ns]);
  for (const link of links) await run('ip', ['link', 'delete', link]);
  // Deletes one copy per call; stops when none is left (or another cleaner removed it first).
  while ((await run('iptables', ['-w', '-D', ...forwardRule(slot)])).code === 0);
}

/** Namespaces and root-namespace links whose names match. */
export async function listOwnNetwork(match: RegExp): Promise<{ namespaces: string[]; links: string[] }> {
  const namespaces = (await runOk('ip', ['netns', 'list']))
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => match.test(name));
  const links = (JSON.parse(await runOk('ip', ['-j', 'link', 'show'])) as Array<{ ifname: string }>)
    .map((link) => link.ifname)
    .filter((name) => match.test(name));
  return { namespaces, links };
}

/** Slots that still have a FORWARD rule for their bridge in the root namespace. */
export async function slotsWithForwardRule(match: RegExp): Promise<number[]> {
  const rules = await runOk('iptables', ['-w', '-S', 'FORWARD']);
  const slots = new Set<number>();
  for (const line of rules.split('\n')) {
    const bridge = /^-A FORWARD -i (\S+) -o \1 -j ACCEPT$/.exec(line)?.[1];
    const slot = bridge === undefined ? undefined : match.exec(bridge)?.[1];
    if (slot !== undefined) slots.add(Number(slot));
  }
  return [...slots];
}
