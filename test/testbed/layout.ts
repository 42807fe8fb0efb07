import { join } from 'node:path';
import { canonicalIPv6 } from '../../shared/net-address.js';

/**
 * Names and addresses of one testbed run. Each run owns a "slot" (a small number), so that runs
 * of different sessions on one machine never collide: slot s uses the bridge `ptl<s>`, namespaces
 * and root-side veths `ptl<s>-<host>`, the subnets 10.213.<s>.0/24 and fd00:213:<s>::/64 (the slot's
 * decimal digits read as a hex group: distinct slots, distinct prefixes) and the directory
 * /tmp/ptl-testbed/<s>. Everything named `ptl<digits>…` was made by this harness. Host i (from 0)
 * is .<i+2> and ::<i+2> on the link; its docker0 has 172.30.<i+1>.1/24 (and, with container IPv6,
 * fd00:213:<s>:<i+1>::/64); its macvlan containers get .<64+16i>/28 and ::<i+2>:0/112 of the link.
 */

export const STATE_ROOT = '/tmp/ptl-testbed';
export const MAX_SLOTS = 64;
export const MAX_HOSTS = 50;
/** Interface names are limited to 15 characters: `ptl63-` leaves 9 for the host name. */
const HOST_NAME = /^[a-z][a-z0-9]{0,8}$/;
/** Matches every bridge, veth and namespace this harness creates; group 1 is the slot. */
export const OWN_NAME = /^ptl(\d+)(?:-[a-z][a-z0-9]*)?$/;

export function validateHostNames(hosts: readonly string[]): void {
  if (hosts.length === 0 || hosts.length > MAX_HOSTS) throw new Error(`testbed: between 1 and ${MAX_HOSTS} hosts`);
  for (const host of hosts) {
    if (!HOST_NAME.test(host)) throw new Error(`testbed: host name ${JSON.stringify(host)} must match ${HOST_NAME}`);
  }
  if (new Set(hosts).size !== hosts.length) throw new Error('testbed: host names must be unique');
}

export function slotDir(slot: number): string {
  return join(STATE_ROOT, String(slot));
}

export function bridgeName(slot: number): string {
  return `ptl${slot}`;
}

export function gatewayAddress(slot: number): string {
  return `10.213.${slot}.1`;
}

export function gatewayAddress6(slot: number): string {
  return canonicalIPv6(`fd00:213:${slot}::1`);
}

/** The test network's IPv4 and IPv6 subnets, as CIDR. */
export function linkSubnets(slot: number): { v4: string; v6: string } {
  return { v4: `10.213.${slot}.0/24`, v6: `${canonicalIPv6(`fd00:213:${slot}::`)}/${IPV6_PREFIX_LENGTH}` };
}

/** The link's IPv6 prefix length, and the length of each host's container prefix. */
export const IPV6_PREFIX_LENGTH = 64;

/** Hosts past this many get no macvlan range: the link's /24 holds 12 ranges of 16 above the hosts' addresses. */
export const MACVLAN_HOSTS = 12;

export interface HostLayout {
  name: string;
  /** Network namespace name; /var/run/netns/<ns> is its handle. */
  ns: string;
  /** The root namespace's end of the veth pair, a port of the bridge. */
  veth: string;
  address: string;
  /** The host's IPv6 address on the link (a ULA, global scope); its IPv6 default route goes via gatewayAddress6. */
  address6: string;
  /** Address of the engine's docker0 bridge, unique per host so container IPs never repeat across hosts. */
  dockerBridgeCidr: string;
  /**
   * docker0's IPv6 prefix (`fixed-cidr-v6`) when the run has container IPv6: unique per host, routed
   * to the host by every other host and by the root namespace.
   */
  containerPrefix6?: string;
  /** The addresses of the link this host's macvlan networks hand out (`--ip-range`), IPv4 and IPv6; the first 12 hosts only. */
  macvlanRanges?: { v4: string; v6: string };
  dir: string;
  socketPath: string;
}

export function hostLayout(slot: number, name: string, index: number, containerIpv6: boolean): HostLayout {
  const dir = join(slotDir(slot), 'hosts', name);
  const containerPrefix6 = `${canonicalIPv6(`fd00:213:${slot}:${index + 1}::`)}/${IPV6_PREFIX_LENGTH}`;
  const macvlanRanges = { v4: `10.213.${slot}.${64 + 16 * index}/28`, v6: `${canonicalIPv6(`fd00:213:${slot}::${index + 2}:0`)}/112` };
  return {
    name,
    ns: `ptl${slot}-${name}`,
    veth: `ptl${slot}-${name}`,
    address: `10.213.${slot}.${index + 2}`,
    address6: canonicalIPv6(`fd00:213:${slot}::${index + 2}`),
    dockerBridgeCidr: `172.30.${index + 1}.1/24`,
    ...(containerIpv6 ? { containerPrefix6 } : {}),
    ...(index < MACVLAN_HOSTS ? { macvlanRanges } : {}),
    dir,
    socketPath: join(dir, 'docker.sock'),
  };
}

export function netnsPath(ns: string): string {
  return `/var/run/netns/${ns}`;
}
