import { join } from 'node:path';

/**
 * Names and addresses of one testbed run. Each run owns a "slot" (a small number), so that runs
 * of different sessions on one machine never collide: slot s uses the bridge `ptl<s>`, namespaces
 * and root-side veths `ptl<s>-<host>`, the subnet 10.213.<s>.0/24 and the directory
 * /tmp/ptl-testbed/<s>. Everything named `ptl<digits>…` was made by this harness.
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

export interface HostLayout {
  name: string;
  /** Network namespace name; /var/run/netns/<ns> is its handle. */
  ns: string;
  /** The root namespace's end of the veth pair, a port of the bridge. */
  veth: string;
  address: string;
  /** Address of the engine's docker0 bridge, unique per host so container IPs never repeat across hosts. */
  dockerBridgeCidr: string;
  dir: string;
  socketPath: string;
}

export function hostLayout(slot: number, name: string, index: number): HostLayout {
  const dir = join(slotDir(slot), 'hosts', name);
  return {
    name,
    ns: `ptl${slot}-${name}`,
    veth: `ptl${slot}-${name}`,
    address: `10.213.${slot}.${index + 2}`,
    dockerBridgeCidr: `172.30.${index + 1}.1/24`,
    dir,
    socketPath: join(dir, 'docker.sock'),
  };
}

export function netnsPath(ns: string): string {
  return `/var/run/netns/${ns}`;
}
