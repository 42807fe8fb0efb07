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
  };
}
