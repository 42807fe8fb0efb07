import { run, runOk } from './processes.js';
import { bridgeName, gatewayAddress, gatewayAddress6, IPV6_PREFIX_LENGTH, netnsPath, type HostLayout } from './layout.js';

/**
 * The test network: one bridge in the root namespace holding the gateway addresses (IPv4 and
 * IPv6), one namespace per host joined to it by a veth pair. Frames between bridge ports pass the
 * root namespace's FORWARD chains (br_netfilter), where another Docker engine may have set the
 * policy to DROP: hence our own ACCEPT rule for the bridge, in iptables and ip6tables.
 */

/** The two tables holding the FORWARD rule of a slot. */
const FIREWALLS = ['iptables', 'ip6tables'] as const;

function forwardRule(slot: number): string[] {
  const bridge = bridgeName(slot);
  return ['FORWARD', '-i', bridge, '-o', bridge, '-j', 'ACCEPT'];
}

export async function createBridge(slot: number): Promise<void> {
  const bridge = bridgeName(slot);
  await runOk('ip', ['link', 'add', bridge, 'type', 'bridge']);
  await runOk('ip', ['addr', 'add', `${gatewayAddress(slot)}/24`, 'dev', bridge]);
  // No duplicate address detection: the address is usable at once instead of "tentative" for a second or more.
  await runOk('ip', ['addr', 'add', `${gatewayAddress6(slot)}/${IPV6_PREFIX_LENGTH}`, 'dev', bridge, 'nodad']);
  await runOk('ip', ['link', 'set', bridge, 'up']);
  for (const firewall of FIREWALLS) await runOk(firewall, ['-w', '-I', ...forwardRule(slot)]);
}

export async function createHostNetwork(slot: number, host: HostLayout): Promise<void> {
  const inNs = (...args: string[]) => runOk('ip', ['-n', host.ns, ...args]);
  await runOk('ip', ['netns', 'add', host.ns]);
  // Before any interface exists, so eth0 and the engine's docker0 and veths inherit it: no address
  // of the host is "tentative" (unusable, EADDRNOTAVAIL on bind) while duplicate address detection runs.
  await runOk('nsenter', [`--net=${netnsPath(host.ns)}`, '--', 'sysctl', '-q', '-w', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
  await runOk('ip', ['link', 'add', host.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.ns]);
  await runOk('ip', ['link', 'set', host.veth, 'master', bridgeName(slot), 'up']);
  await inNs('addr', 'add', `${host.address}/24`, 'dev', 'eth0');
  await inNs('addr', 'add', `${host.address6}/${IPV6_PREFIX_LENGTH}`, 'dev', 'eth0');
  await inNs('link', 'set', 'lo', 'up');
  await inNs('link', 'set', 'eth0', 'up');
  await inNs('route', 'add', 'default', 'via', gatewayAddress(slot));
  await inNs('-6', 'route', 'add', 'default', 'via', gatewayAddress6(slot));
}

/**
 * Routes each host's container prefix (docker0's IPv6) via that host's link address, in every
 * other host and in the root namespace: container IPv6 addresses are reachable from everywhere on
 * the test network, as on a routed dual-stack network, without NAT. The root namespace's routes go
 * with the bridge.
 */
export async function routeContainerPrefixes(slot: number, hosts: readonly HostLayout[]): Promise<void> {
  const routed = hosts.filter((host) => host.containerPrefix6 !== undefined);
  const route = (to: HostLayout) => ['-6', 'route', 'add', to.containerPrefix6!, 'via', to.address6];
  await Promise.all(
    hosts.map(async (from) => {
      for (const to of routed) if (to !== from) await runOk('ip', ['-n', from.ns, ...route(to)]);
    }),
  );
  for (const to of routed) await runOk('ip', [...route(to), 'dev', bridgeName(slot)]);
}

/** Takes the host's link to the bridge down (or up again): a network partition without touching the host. */
export async function setHostLink(host: HostLayout, up: boolean): Promise<void> {
  await runOk('ip', ['link', 'set', host.veth, up ? 'up' : 'down']);
}

/** Removes namespaces, veths, the bridge and the FORWARD rules of a slot; what is already gone is skipped, so two cleaners may race. */
export async function removeNetwork(slot: number, namespaces: readonly string[], links: readonly string[]): Promise<void> {
  for (const ns of namespaces) await run('ip', ['netns', 'delete', ns]);
  for (const link of links) await run('ip', ['link', 'delete', link]);
  // Deletes one copy per call; stops when none is left (or another cleaner removed it first).
  for (const firewall of FIREWALLS) while ((await run(firewall, ['-w', '-D', ...forwardRule(slot)])).code === 0);
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

/** Slots that still have a FORWARD rule for their bridge in the root namespace (iptables or ip6tables). */
export async function slotsWithForwardRule(match: RegExp): Promise<number[]> {
  const rules = (await Promise.all(FIREWALLS.map((firewall) => runOk(firewall, ['-w', '-S', 'FORWARD'])))).join('\n');
  const slots = new Set<number>();
  for (const line of rules.split('\n')) {
    const bridge = /^-A FORWARD -i (\S+) -o \1 -j ACCEPT$/.exec(line)?.[1];
    const slot = bridge === undefined ? undefined : match.exec(bridge)?.[1];
    if (slot !== undefined) slots.add(Number(slot));
  }
  return [...slots];
}
