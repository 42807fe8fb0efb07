import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { testbedSkipReason, useTestbed } from '../testbed/index.js';
import { CloseCode } from '../../shared/close-codes.js';
import { until } from '../support/until.js';
import { TestPki, type IssuedCertificate } from '../support/test-pki.js';
import { runCli, type CliProcess } from './support/cli.js';
import { useCluster } from './support/cluster.js';
import { runWeb } from './support/faults.js';
import { refusalOf } from './support/faults-ws.js';

const skip = await testbedSkipReason();

const dir = mkdtempSync(join(tmpdir(), 'ptl-sec-mtls-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Made once the testbed is up: the aggregator's certificate names the gateway address. */
let pki: TestPki;
const certs: Record<string, IssuedCertificate> = {};
const pem = (file: string) => readFileSync(file, 'utf8');

/** A GET over HTTPS verified against the test CA, with no client certificate. */
function httpsGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, ca: pem(pki.ca), timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

describe('agent mTLS: --client-ca on the aggregator, --tls-cert/--tls-key on agents; the certificate names the node', { skip }, () => {
  const bed = useTestbed({ hosts: ['host1', 'host2'] });
  const cluster = useCluster(bed, (b) => {
    pki = new TestPki(dir);
    certs.aggregator = pki.issue('aggregator', { ip: [b.gatewayAddress, '127.0.0.1'] });
    // host1 by its DNS SAN (the CN differs and is ignored); host2 by its CN alone.
    certs.host1 = pki.issue('host1', { cn: 'not-a-node', dns: ['host1'] });
    certs.host2 = pki.issue('host2');
    return {
      tls: true,
      aggregatorArgs: ['--tls-cert', certs.aggregator.cert, '--tls-key', certs.aggregator.key, '--client-ca', pki.ca],
      agentArgs: ['--ca', pki.ca],
      agentArgsOf: (host) => ['--tls-cert', certs[host.name]!.cert, '--tls-key', certs[host.name]!.key],
    };
  });
  const http = () => cluster().httpPort;
  const closesOf = (agent: CliProcess) => agent.logs.filter((l) => l.msg === 'aggregator connection closed; reconnecting');
  /** A CLI agent in host1's namespace, stopped by the test. */
  const agentOnHost1 = (args: string[]) => {
    const host1 = bed().host('host1');
    return runCli(['agent', '--aggregator', cluster().aggregatorUrl, '--docker', host1.dockerHost, '--ca', pki.ca, ...args], { netns: host1.ns });
  };

  it('the right certificates register (a DNS SAN, a CN): their services show up in the catalog, audit credential "certificate"', async () => {
    await runWeb(bed().host('host1'), 'web-1', 7691);
    const catalog = async () => JSON.parse((await httpsGet(http(), '/v1/catalog/service/web')).body) as Array<{ Node: string }>;
    await until(async () => (await catalog()).some((e) => e.Node === 'host1'), 10_000, 'host1 web in the catalog');
    for (const node of ['host1', 'host2']) {
      const line = cluster().aggregator.logs.find((l) => l.audit === 'register' && l.node === node);
      assert.equal(line?.credential, 'certificate', `${node} registered with its certificate`);
      assert.equal(cluster().agent(node).logs.filter((l) => String(l.msg).startsWith('--tls-cert does not name')).length, 0);
    }
  });

  it(`host1's certificate saying --node host2: closed with ${CloseCode.unauthorized} and the certificate's names; host2's agent not cut`, async (t) => {
    const intruder = agentOnHost1(['--node', 'host2', '--tls-cert', certs.host1!.cert, '--tls-key', certs.host1!.key]);
    try {
      const closed = await intruder.waitForLog((l) => l.msg === 'aggregator connection closed; reconnecting');
      t.diagnostic(JSON.stringify({ code: closed.code, reason: closed.reason }));
      assert.equal(closed.code, CloseCode.unauthorized);
      assert.equal(closed.reason, "node host2 is not covered by this agent's client certificate (names: host1)");
      const warned = intruder.logs.find((l) => String(l.msg).startsWith('--tls-cert does not name node host2'));
      assert.deepEqual(warned?.names, ['host1'], 'the agent warned at its start');
    } finally {
      await intruder.stop();
    }
    const refused = cluster().aggregator.logs.find((l) => l.audit === 'refuse' && l.node === 'host2');
    assert.equal(refused?.credential, 'certificate');
    assert.equal(refused?.remote, bed().host('host1').address);
    assert.deepEqual(closesOf(cluster().agent('host2')), []);
  });

  it('no client certificate: the CLI agent is refused with HTTP 401 at the upgrade, the reason says a certificate is required', async () => {
    const bare = agentOnHost1(['--node', 'host1']);
    try {
      const refused = await bare.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('aggregator refused the WebSocket upgrade'));
      assert.equal(refused.status, 401);
    } finally {
      await bare.stop();
    }
    assert.deepEqual(await refusalOf(http(), [], undefined, { ca: pem(pki.ca) }), { kind: 'http', status: 401, body: 'client certificate required (--client-ca)\n' });
  });

  it('a certificate for host1 from another CA: HTTP 401, not accepted', async () => {
    const otherDir = join(dir, 'other');
    mkdirSync(otherDir);
    const forged = new TestPki(otherDir, '/CN=another CA').issue('host1', { dns: ['host1'] });
    const refusal = await refusalOf(http(), [], undefined, { ca: pem(pki.ca), cert: pem(forged.cert), key: pem(forged.key) });
    assert.equal(refusal.kind, 'http');
    assert.equal(refusal.kind === 'http' && refusal.status, 401);
    assert.equal(refusal.kind === 'http' && refusal.body, 'client certificate not accepted: UNABLE_TO_VERIFY_LEAF_SIGNATURE\n');
  });

  it('HTTP API clients need no client certificate; /v1/agent/self and the logs hold no key', async () => {
    const services = await httpsGet(http(), '/v1/catalog/services');
    assert.equal(services.status, 200);
    assert.ok('web' in (JSON.parse(services.body) as Record<string, unknown>));
    const self = await httpsGet(http(), '/v1/agent/self');
    assert.equal(self.status, 200);
    const everything = [self.body, ...[cluster().aggregator, ...cluster().agents.values()].flatMap((p) => p.logs.map((l) => JSON.stringify(l)))];
    assert.deepEqual(everything.filter((text) => text.includes('PRIVATE KEY')), []);
  });
});
