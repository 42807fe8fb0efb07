import type { EtcdCluster } from '../../support/etcd-cluster.js';

/** What etcd itself says it did: from each member's /metrics and `etcdctl endpoint status`. */
export interface EtcdCounters {
  /** The cluster's revision (every write request that changed something advances it by one). */
  revision: number;
  /** Key puts and deletes applied (etcd_mvcc_put_total, etcd_mvcc_delete_total). */
  puts: number;
  deletes: number;
  /** Transactions (etcd_mvcc_txn_total): our store writes in transactions. */
  txns: number;
  /** Raft proposals committed (every write request, lease grants and revokes included). */
  proposals: number;
  leasesGranted: number;
  /** Largest backend file of the members (dbSize), and the part of it in use (dbSizeInUse). */
  dbSize: number;
  dbSizeInUse: number;
  /** WAL fsync durations of the first running member (a write waits for a quorum's fsync): cumulative buckets, le in s → count. */
  walFsync: Histogram;
}

/** A Prometheus histogram's cumulative buckets (upper bound → count) with its sum and count. */
export interface Histogram {
  buckets: Array<[number, number]>;
  sum: number;
  count: number;
}

function histogram(text: string, name: string): Histogram {
  const buckets: Array<[number, number]> = [];
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)$`, 'gm'))) buckets.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
  return { buckets, sum: metric(text, `${name}_sum`), count: metric(text, `${name}_count`) };
}

/** b − a of one histogram. */
function histogramDelta(a: Histogram, b: Histogram): Histogram {
  return {
    buckets: b.buckets.map(([le, n], i) => [le, n - (a.buckets[i]?.[1] ?? 0)]),
    sum: b.sum - a.sum,
    count: b.count - a.count,
  };
}

/** The upper bound of the bucket holding quantile q (NaN without samples). */
export function histogramQuantile(h: Histogram, q: number): number {
  if (!(h.count > 0)) return NaN;
  const rank = q * h.count;
  return h.buckets.find(([, n]) => n >= rank)?.[0] ?? NaN;
}

const metric = (text: string, name: string): number => {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};

/**
 * The counters, the largest of the running members' (each member applies every write; lease
 * grants are counted by the leader only, hence the max too).
 */
export async function etcdCounters(cluster: EtcdCluster): Promise<EtcdCounters> {
  const texts = await Promise.all(
    cluster.endpoints.map((e, i) => (cluster.isRunning(i) ? fetch(`${e}/metrics`).then((r) => r.text()) : Promise.resolve(''))),
  );
  const max = (name: string): number => Math.max(...texts.filter(Boolean).map((t) => metric(t, name)));
  // The first running member's (every member fsyncs every entry; a write waits for a quorum's).
  const walFsync = histogram(texts.find(Boolean) ?? '', 'etcd_disk_wal_fsync_duration_seconds');
  const status = JSON.parse(await cluster.etcdctl(['endpoint', 'status', '-w', 'json'])) as Array<{
    Status: { header: { revision: number }; dbSize: number; dbSizeInUse: number };
  }>;
  return {
    revision: Math.max(...status.map((s) => s.Status.header.revision)),
    puts: max('etcd_mvcc_put_total'),
    deletes: max('etcd_mvcc_delete_total'),
    txns: max('etcd_mvcc_txn_total'),
    proposals: max('etcd_server_proposals_committed_total'),
    leasesGranted: max('etcd_debugging_lease_granted_total'),
    dbSize: Math.max(...status.map((s) => s.Status.dbSize)),
    dbSizeInUse: Math.max(...status.map((s) => s.Status.dbSizeInUse)),
    walFsync,
  };
}

/** b − a for the counters (sizes as they are at b). */
export function etcdDelta(a: EtcdCounters, b: EtcdCounters): EtcdCounters {
  return {
    revision: b.revision - a.revision,
    puts: b.puts - a.puts,
    deletes: b.deletes - a.deletes,
    txns: b.txns - a.txns,
    proposals: b.proposals - a.proposals,
    leasesGranted: b.leasesGranted - a.leasesGranted,
    dbSize: b.dbSize,
    dbSizeInUse: b.dbSizeInUse,
    walFsync: histogramDelta(a.walFsync, b.walFsync),
  };
}
