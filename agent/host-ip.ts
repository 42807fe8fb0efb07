import { readFile } from 'node:fs/promises';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { isIP } from 'node:net';

export type HostIpSource = 'flag' | 'aggregator' | 'default-route' | 'aggregator-loopback';

export interface HostIp {
  address: string;
  source: HostIpSource;
}

export interface HostIpInputs {
  /** --ip */
  flag?: string;
  /** The address the aggregator saw us connect from (welcome message). */
  observed?: string;
  /** IPv4 of the default-route interface. */
  defaultRoute?: string;
}

/**
 * The address to advertise, in the documented order: `--ip`; the aggregator's
 * observed address (right when the agent runs in a bridged container); the
 * default-route interface. A loopback observation only says the aggregator runs on
 * this machine, so it is the last resort.
 */
export function chooseHostIp(i: HostIpInputs): HostIp | undefined {
  if (i.flag) return { address: i.flag, source: 'flag' };
  const observed = i.observed ? unmapped(i.observed) : undefined;
  if (observed && isIP(observed) && !isLoopbackOrUnspecified(observed)) return { address: observed, source: 'aggregator' };
  if (i.defaultRoute) return { address: i.defaultRoute, source: 'default-route' };
  if (observed && isIP(observed)) return { address: observed, source: 'aggregator-loopback' };
  return undefined;
}

/** Pure: the IPv4 of the interface holding the IPv4 default route, from /proc/net/route text. */
export function defaultRouteIPv4(routeTable: string, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): string | undefined {
  const routes = routeTable
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 8 && f[1] === '00000000' && f[7] === '00000000')
    .sort((a, b) => Number(a[6]) - Number(b[6]));
  for (const route of routes) {
    const address = interfaces[route[0] ?? '']?.find((a) => a.family === 'IPv4' && !a.internal)?.address;
    if (address) return address;
  }
  return undefined;
}

export async function detectDefaultRouteIPv4(): Promise<string | undefined> {
  try {
    return defaultRouteIPv4(await readFile('/proc/net/route', 'utf8'), networkInterfaces());
  } catch {
    return undefined;
  }
}

function unmapped(addr: string): string {
  return addr.startsWith('::ffff:') ? addr.slice('::ffff:'.length) : addr;
}

function isLoopbackOrUnspecified(addr: string): boolean {
  return addr.startsWith('127.') || addr === '::1' || addr === '0.0.0.0' || addr === '::';
}
