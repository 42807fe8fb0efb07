import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { pino } from 'pino';
import { EtcdStore, type EtcdStoreOptions } from '../../aggregator/catalog/etcd-store.js';
import { ServiceInstance } from '../../shared/model.js';
import { EtcdCluster } from '../support/etcd-cluster.js';
import { instance, nodeReg } from '../support/services.js';
import { useSuiteResource } from '../support/suite-resource.js';
import { until } from '../support/until.js';

/** The etcd store over TLS with client certificates and etcd user/password auth (a real etcd 3.4, one member). */

const logger = pino({ level: process.env.PORTOLAN_TEST_LOG ?? 'silent' });

describe('etcd store over TLS with authentication', () => {
  const cluster = useSuiteResource('etcd cluster (TLS)', async () => {
    const c = await EtcdCluster.start({ members: 1, tls: true });
    await c.enableAuth('rootpw');
    await c.addUser('portolan', 'secret', '/portolan/tls/');
    return c;
  });
  const open: EtcdStore[] = [];

  function store(over: Partial<EtcdStoreOptions>): EtcdStore {
    const c = cluster();
    const s = new EtcdStore({ endpoints: c.endpoints, prefix: '/portolan/tls/', holder: 'agg-tls', reapAfterMs: 10_000, logger, compactEveryMs: 0, tls: c.tls, ...over });
    open.push(s);
    return s;
  }

  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close()));
  });

  test('with the CA, a client certificate and a user limited to the prefix, the store writes and reads its catalog', async () => {
    const a = store({ auth: { username: 'portolan', password: 'secret' } });
    await a.start();
    assert.ok(a.writable);
    await a.replaceNode(nodeReg('host-1'), [ServiceInstance.parse(instance({ id: 'web-1', name: 'web' }))]);
    const b = store({ auth: { username: 'portolan', password: 'secret' }, holder: 'agg-tls-2' });
    await b.start();
    assert.equal(b.query.instances('web').length, 1);
    await a.release('host-1', 'bye');
    await until(() => b.query.node('host-1')?.serfHealth?.status === 'critical', 3000, 'b sees the release');
  });

  test('a user limited to the prefix can run the compaction rounds (CAS key under the prefix, compact)', async () => {
    const a = store({ auth: { username: 'portolan', password: 'secret' }, compactEveryMs: 3_600_000 });
    await a.start();
    await a.replaceNode(nodeReg('host-2'), []);
    assert.equal(await a.compactor!.round(), undefined);
    await a.replaceNode(nodeReg('host-2', '10.0.0.9'), []);
    const target = await a.compactor!.round();
    assert.ok(target !== undefined && target > 0, 'compacted');
    assert.equal(a.figures.compactions, 1);
  });

  test('a wrong password makes start() reject with a clear error instead of retrying forever', async () => {
    const a = store({ auth: { username: 'portolan', password: 'wrong' } });
    await assert.rejects(a.start(), /etcd: cannot read \/portolan\/tls\/.*authentication failed/);
  });

  test('a user without permission on the prefix makes start() reject, naming the prefix', async () => {
    const a = store({ auth: { username: 'portolan', password: 'secret' }, prefix: '/elsewhere/' });
    await assert.rejects(a.start(), /etcd: cannot read \/elsewhere\/.*permission denied/);
  });
});
