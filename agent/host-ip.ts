import { readFile } from 'node:fs/promises';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { addressOfHex } from '../shared/dns/addresses.js';
import { canonicalIPv6, normalizeAddress } from '../shared/net-address.js';

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
 * The address to advertise, in the documented order: `--ip`; the aggregator's observed
 * IPv4 address (right when the agent runs in a bridged container); the default-route
 * interface's IPv4. An agent that reached the aggregator over IPv6 and has no IPv4 default
 * route is on an IPv6-only network: the observed IPv6 address then. A loopback observation
 * only says the aggregator runs on this machine, so it is the last resort.
 */
export function chooseHostIp(i: HostIpInputs): HostIp | undefined {
  if (i.flag) return { address: i.flag, source: 'flag' };
  const observed = i.observed ? normalizeAddress(i.observed) : undefined;
  if (observed && isIPv4(observed) && !isLoopbackOrUnspecified(observed)) return { address: observed, source: 'aggregator' };
  if (i.defaultRoute) return { address: i.defaultRoute, source: 'default-route' };
  if (observed && isAdvertisableIPv6(observed)) return { address: observed, source: 'aggregator' };
  if (observed && isIP(observed)) return { address: observed, source: 'aggregator-loopback' };
  return undefined;
}

export interface HostIp6Inputs {
  /** --ip6 */
  flag?: string;
  /** The address the aggregator saw us connect from: counts when it is an IPv6 one. */
  observed?: string;
  /** The global IPv6 of the IPv6 default-route interface. */
  defaultRoute?: string;
}

/**
 * The host's IPv6 address besides its IPv4 one (NodeInfo.address6): `--ip6`; the address the
 * aggregator saw us connect from, when that was over IPv6 (and neither loopback nor link-local,
 * which say nothing to other hosts); the IPv6 default-route interface's global address.
 */
export function chooseHostIp6(i: HostIp6Inputs): HostIp | undefined {
  if (i.flag) return { address: i.flag, source: 'flag' };
  const observed = i.observed ? normalizeAddress(i.observed) : undefined;
  if (observed && isAdvertisableIPv6(observed)) return { address: observed, source: 'aggregator' };
  if (i.defaultRoute) return { address: i.defaultRoute, source: 'default-route' };
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

/** Route flags (include/uapi/linux/ipv6_route.h). */
const RTF_UP = 0x0001;
const RTF_REJECT = 0x0200;
/** Address flags as /proc/net/if_inet6 shows them (include/uapi/linux/if_addr.h, the low byte). */
const IFA_F_TEMPORARY = 0x01;
const IFA_F_DADFAILED = 0x08;
const IFA_F_DEPRECATED = 0x20;
const IFA_F_TENTATIVE = 0x40;
const UNUSABLE = IFA_F_TEMPORARY | IFA_F_DADFAILED | IFA_F_DEPRECATED | IFA_F_TENTATIVE;
const SCOPE_GLOBAL = 0x00;

/**
 * Pure: the global IPv6 address of the interface holding the IPv6 default route (the lowest
 * metric first), from /proc/net/ipv6_route and /proc/net/if_inet6 text. Global scope includes
 * ULAs (fd00::/8, what a private dual-stack network uses); link-local and loopback are not.
 * Temporary (privacy) addresses change every day or so and deprecated ones are on their way
 * out, so neither is advertised, nor one still tentative or whose duplicate address detection
 * failed. A public address (2000::/3) comes before a ULA on the same interface: more peers reach it.
 */
export function defaultRouteIPv6(routeTable: string, addressTable: string): string | undefined {
  const devices = table(routeTable)
    .filter((f) => f.length >= 10 && /^0{32}$/.test(f[0]!) && f[1] === '00' && f[9] !== 'lo')
    .filter((f) => (parseInt(f[8]!, 16) & (RTF_UP | RTF_REJECT)) === RTF_UP)
    .sort((a, b) => parseInt(a[5]!, 16) - parseInt(b[5]!, 16))
    .map((f) => f[9]!);
  const addresses = table(addressTable)
    .filter((f) => f.length >= 6 && parseInt(f[3]!, 16) === SCOPE_GLOBAL && (parseInt(f[4]!, 16) & UNUSABLE) === 0)
    .map((f) => ({ device: f[5]!, address: ipv6FromHex(f[0]!) }))
    .filter((a): a is { device: string; address: string } => a.address !== undefined && isAdvertisableIPv6(a.address));
  for (const device of devices) {
    const own = addresses.filter((a) => a.device === device).map((a) => a.address);
    const chosen = own.find((address) => !isUniqueLocal(address)) ?? own[0];
    if (chosen) return chosen;
  }
  return undefined;
}

export async function detectDefaultRouteIPv6(): Promise<string | undefined> {
  try {
    const [routes, addresses] = await Promise.all([readFile('/proc/net/ipv6_route', 'utf8'), readFile('/proc/net/if_inet6', 'utf8')]);
    return defaultRouteIPv6(routes, addresses);
  } catch {
    return undefined;
  }
}

function table(text: string): string[][] {
  return text.split('\n').map((line) => line.trim().split(/\s+/));
}

/** `fd000000…0002` → `fd00::2`; undefined when not 32 hex digits. */
function ipv6FromHex(hex: string): string | undefined {
  const decoded = addressOfHex(hex.toLowerCase());
  return decoded?.family === 6 ? canonicalIPv6(decoded.address) : undefined;
}

/** An IPv6 address other hosts may reach this one at: not loopback, unspecified, link-local, multicast or IPv4-mapped. */
function isAdvertisableIPv6(addr: string): boolean {
  return isIPv6(addr) && !isLoopbackOrUnspecified(addr) && !/^(fe[89ab]|ff)/i.test(addr) && !/^::ffff:/i.test(addr) && !addr.includes('%');
}

function isUniqueLocal(addr: string): boolean {
  return /^f[cd]/i.test(addr);
}

function isLoopbackOrUnspecified(addr: string): boolean {
  return addr.startsWith('127.') || addr === '::1' || addr === '0.0.0.0' || addr === '::';
}
