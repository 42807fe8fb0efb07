import type { IRequestOp } from 'etcd3';

/** etcd's --max-txn-ops default. */
export const MAX_TXN_OPS = 128;
/**
 * Bytes of keys and values per transaction: etcd refuses requests over --max-request-bytes
 * (1.5 MiB by default); 1 MiB leaves room for the framing and for a member configured lower.
 */
export const MAX_TXN_BYTES = 1024 * 1024;

/** Rough size of one op on the wire: its key, value and a few bytes of framing. */
export function opBytes(op: IRequestOp): number {
  const put = op.request_put;
  if (put) return (put.key?.length ?? 0) + (put.value?.length ?? 0) + 24;
  const del = op.request_delete_range;
  if (del) return (del.key?.length ?? 0) + (del.range_end?.length ?? 0) + 16;
  return 64;
}

/**
 * Splits ops, in order, into transactions of at most `maxOps` ops and `maxBytes` bytes. A
 * single op over `maxBytes` still goes alone (etcd will say whether it fits its own limit).
 */
export function splitOps(ops: readonly IRequestOp[], maxOps = MAX_TXN_OPS, maxBytes = MAX_TXN_BYTES): IRequestOp[][] {
  if (maxOps < 1) throw new Error(`splitOps: maxOps must be at least 1, got ${maxOps}`);
  const txns: IRequestOp[][] = [];
  let current: IRequestOp[] = [];
  let bytes = 0;
  for (const op of ops) {
    const b = opBytes(op);
    if (current.length > 0 && (current.length >= maxOps || bytes + b > maxBytes)) {
      txns.push(current);
      current = [];
      bytes = 0;
    }
    current.push(op);
    bytes += b;
  }
  if (current.length > 0) txns.push(current);
  return txns;
}
