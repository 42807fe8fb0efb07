/**
 * A peer's address as one key: an IPv4 client reaching a dual-stack (`::`) socket shows up as
 * `::ffff:a.b.c.d`, and must count (and log) as the same client as `a.b.c.d`.
 */
export function normalizeAddress(addr: string): string {
  return addr.startsWith('::ffff:') ? addr.slice('::ffff:'.length) : addr;
}

/**
 * An IPv6 address in RFC 5952 text (lower case, the longest run of zero groups as `::`), as the
 * kernel, Docker and Node print it: `FD00:0:0::2` → `fd00::2`. The caller checks it is one (isIPv6).
 */
export function canonicalIPv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

/** `host:port`, an IPv6 host in brackets (`[::]:8500`), as Go's net.JoinHostPort writes it and URLs need it. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
