import { SocketAddress, isIPv4, isIPv6 } from 'node:net';

export type AddressFamily = 4 | 6 | 'name';

export function familyOf(address: string): AddressFamily {
  if (isIPv4(address)) return 4;
  if (isIPv6(address)) return 6;
  return 'name';
}

/** The 16 bytes of an IPv6 address, including the `::ffff:1.2.3.4` forms. */
export function ipv6Bytes(address: string): Uint8Array {
  const out = new Uint8Array(16);
  let text = address.split('%')[0]!;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4[1]!.split('.').map(Number);
    text = `${text.slice(0, v4.index)}${(((a! << 8) | b!) >>> 0).toString(16)}:${((c! << 8) | d!).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups = [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  groups.forEach((g, i) => {
    const n = parseInt(g, 16);
    out[i * 2] = n >> 8;
    out[i * 2 + 1] = n & 0xff;
  });
  return out;
}

/** The fully expanded form dns2's AAAA encoder handles for every input. */
export function expandIPv6(address: string): string {
  const b = ipv6Bytes(address);
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return groups.join(':');
}

/** Consul's `<hex>.addr` label: 8 hex digits for IPv4, 32 for IPv6. */
export function hexOfAddress(address: string, family: 4 | 6): string {
  const bytes = family === 4 ? address.split('.').map(Number) : [...ipv6Bytes(address)];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** The address a `<hex>.addr` label encodes, or undefined if it is not 8 or 32 hex digits. */
export function addressOfHex(hex: string): { address: string; family: 4 | 6 } | undefined {
  if (!/^[0-9a-f]+$/.test(hex)) return undefined;
  if (hex.length === 8) {
    return { address: [0, 2, 4, 6].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.'), family: 4 };
  }
  if (hex.length === 32) {
    const groups = Array.from({ length: 8 }, (_, i) => parseInt(hex.slice(i * 4, i * 4 + 4), 16).toString(16));
    return { address: groups.join(':'), family: 6 };
  }
  return undefined;
}

/**
 * One spelling per IP address, as an index key: IPv4 dotted, IPv6 in RFC 5952 form (what
 * inet_ntop writes, as Go's ip.String(), which Consul compares by); undefined for a host name.
 */
export function addressKey(address: string): string | undefined {
  const family = familyOf(address);
  if (family === 4) return address;
  return family === 6 ? new SocketAddress({ address, family: 'ipv6' }).address : undefined;
}

/** An instance's or node's addresses: `address`, and `address6` only beside an IPv4 one (its contract). */
export function dualStack(address: string, address6: string | undefined): string[] {
  return address6 !== undefined && familyOf(address) === 4 && familyOf(address6) === 6 ? [address, address6] : [address];
}

/** The distinct index keys of `dualStack(address, address6)`. */
export function addressKeys(address: string, address6: string | undefined): string[] {
  const keys = dualStack(address, address6).flatMap((a) => addressKey(a) ?? []);
  return keys.length === 2 && keys[0] === keys[1] ? [keys[0]!] : keys;
}

const OCTET = /^(?:0|[1-9]\d{0,2})$/;
const NIBBLE = /^[0-9a-f]$/;

/**
 * The address a reverse name stands for, from its labels before `in-addr.arpa` (four decimal
 * octets, last first) or `ip6.arpa` (32 hex nibbles, last first), as addressKey spells it;
 * undefined for anything else (too few or too many labels, 256, a leading zero, not hex).
 */
export function addressOfReverse(labels: readonly string[], zone: 'in-addr' | 'ip6'): string | undefined {
  const reversed = [...labels].reverse();
  if (zone === 'in-addr') {
    if (reversed.length !== 4 || !reversed.every((l) => OCTET.test(l) && Number(l) <= 255)) return undefined;
    return reversed.join('.');
  }
  if (reversed.length !== 32 || !reversed.every((l) => NIBBLE.test(l))) return undefined;
  const groups = Array.from({ length: 8 }, (_, i) => reversed.slice(i * 4, i * 4 + 4).join(''));
  return addressKey(groups.join(':'));
}
