/**
 * A peer's address as one key: an IPv4 client reaching a dual-stack (`::`) socket shows up as
 * `::ffff:a.b.c.d`, and must count (and log) as the same client as `a.b.c.d`.
 */
export function normalizeAddress(addr: string): string {
  return addr.startsWith('::ffff:') ? addr.slice('::ffff:'.length) : addr;
}
