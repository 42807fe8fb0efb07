import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { AgentLink } from '../../aggregator/agent-link.js';
import { EtcdStore } from '../../aggregator/catalog/etcd-store.js';
import { CloseCode } from '../../shared/close-codes.js';
import { connect, hello, snapshot } from '../support/agent-peer.js';
import { EtcdCluster } from '../support/etcd-cluster.js';
import { useSuiteResource } from '../support/suite-resource.js';
import { serveAgentLink } from '../support/agent-link-server.js';
import { until } from '../support/until.js';

/**
 * Two engines claiming one node name through two aggregators on one etcd conflict as they do
 * through one (4009 for the newcomer): the holder is read from the shared catalog.
 */
describe('one node name, two engines, two aggregators on one etcd', () => {
  const cluster = useSuiteResource('etcd cluster', () => EtcdCluster.start({ members: 1 }));
  const logger = pino({ level: process.env.PORTOLAN_TEST_LOG ?? 'silent' });

  /** An aggregator's agent link over its own etcd store, on a loopback HTTP server. */
  async function aggregator(t: TestContext, prefix: string, holder: string) {
    const store = new EtcdStore({ endpoints: cluster().endpoints, prefix, holder, reapAfterMs: 10_000, logger, compactEveryMs: 0 });
    await store.start();
    const link = new AgentLink({ store, datacenter: 'dc1', logger, maxPayload: 1 << 20, heartbeatMs: 1000, suspectAfterMs: 3000 });
    const url = await serveAgentLink(t, link);
    // After hooks run in the order registered: the link (and its releases) before the store.
    t.after(() => store.close());
    return { store, url };
  }

  test('the second engine, on the other aggregator, is refused with 4009 naming the holder; the same engine moving over is taken', async (t) => {
    const prefix = `/portolan-conflict/${process.pid}/`;
    const a = await aggregator(t, prefix, 'agg-a');
    const b = await aggregator(t, prefix, 'agg-b');
    const first = await connect(a.url);
    first.send(hello('twin', undefined, 'engine-1'));
    first.send(snapshot('twin', ['twin:web:80']));
    await until(() => b.store.heldElsewhere('twin')?.engineId === 'engine-1', 5000, 'b sees twin held by agg-a');

    const intruder = await connect(b.url);
    intruder.send(hello('twin', undefined, 'engine-2'));
    let closed: { code: number; reason: string } | undefined;
    void intruder.closed.then((c) => (closed = c));
    const refused = await until(() => closed, 5000, 'the intruder\'s connection closed');
    assert.equal(refused.code, CloseCode.nodeConflict);
    assert.match(refused.reason, /engine engine-1 through aggregator agg-a/);
    assert.deepEqual(b.store.query.nodeInstances('twin').map((i) => i.service.id), ['twin:web:80'], 'twin untouched');

    // The same engine (its agent moving to b) is no conflict: b takes the node over.
    const moved = await connect(b.url);
    moved.send(hello('twin', undefined, 'engine-1'));
    moved.send(snapshot('twin', ['twin:web:81']));
    await until(() => b.store.heldElsewhere('twin') === undefined && a.store.heldElsewhere('twin')?.holder === 'agg-b', 5000, 'agg-b holds twin');
    first.ws.close();
    moved.ws.close();
  });
});
