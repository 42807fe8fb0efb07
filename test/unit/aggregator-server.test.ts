import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startAggregator } from '../../aggregator/server.js';
import { AGENT_WS_PATH } from '../../shared/protocol.js';
import { connect, hello, snapshot } from '../support/agent-peer.js';
import { dig } from '../support/dig.js';
import { loopbackAggregator } from '../support/aggregator-options.js';
import { until } from '../support/until.js';

const base = loopbackAggregator;

function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('/metrics reports agents, catalog, DNS answers, HTTP requests and rejections', async (t) => {
  const agg = await startAggregator(base, pino({ level: 'silent' }));
  t.after(() => agg.close());
  const http = `http://127.0.0.1:${agg.httpPort}`;
  const peer = await connect(`ws://127.0.0.1:${agg.httpPort}${AGENT_WS_PATH}`);
  peer.send(hello('h1'));
  peer.send(snapshot('h1', ['h1:web:80', 'h1:web:81']));
  await until(async () => ((await (await fetch(`${http}/v1/catalog/service/web`)).json()) as unknown[]).length === 2);
  const bad = await connect(`ws://127.0.0.1:${agg.httpPort}${AGENT_WS_PATH}`);
  bad.send('{nope');
  await bad.closed;
  await dig(agg.dnsPort, 'web.service.consul', 'A');
  await dig(agg.dnsPort, 'nope.service.consul', 'SRV');

  const res = await fetch(`${http}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  const text = await res.text();
  assert.equal(metricValue(text, 'portolan_agents_connected'), 1);
  assert.equal(metricValue(text, 'portolan_catalog_nodes'), 1);
  assert.equal(metricValue(text, 'portolan_catalog_services'), 1);
  assert.equal(metricValue(text, 'portolan_catalog_instances{health="passing"}'), 2);
  assert.equal(metricValue(text, 'portolan_agent_messages_total{type="snapshot"}'), 1);
  assert.equal(metricValue(text, 'portolan_agent_rejections_total{code="4000"}'), 1);
  assert.equal(metricValue(text, 'portolan_dns_queries_total{qtype="A",rcode="NOERROR"}'), 1);
  assert.equal(metricValue(text, 'portolan_dns_queries_total{qtype="SRV",rcode="NXDOMAIN"}'), 1);
  assert.equal(metricValue(text, 'portolan_dns_answer_seconds_count'), 2);
  assert.ok((metricValue(text, 'portolan_http_requests_total{method="GET",route="/v1/catalog/service/:service",status="200"}') ?? 0) >= 1);
  assert.ok((metricValue(text, 'portolan_catalog_index') ?? 0) > 0);
  assert.ok((metricValue(text, 'portolan_process_resident_memory_bytes') ?? 0) > 0);
});

test('with TLS the API is HTTPS and agents connect over WSS', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'portolan-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [cert, key] = [join(dir, 'cert.pem'), join(dir, 'key.pem')];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const ca = readFileSync(cert, 'utf8');
  const agg = await startAggregator({ ...base, tls: { cert: ca, key: readFileSync(key, 'utf8') } }, pino({ level: 'silent' }));
  t.after(() => agg.close());

  const peer = await connect(`wss://127.0.0.1:${agg.httpPort}${AGENT_WS_PATH}`, {}, { ca });
  peer.send(hello('secure'));
  peer.send(snapshot('secure', ['secure:web:80']));
  const body = await until(async () => (await httpsGet(`https://127.0.0.1:${agg.httpPort}/v1/catalog/nodes`, ca)).includes('secure')).then(() =>
    httpsGet(`https://127.0.0.1:${agg.httpPort}/v1/catalog/service/web`, ca),
  );
  assert.equal((JSON.parse(body) as unknown[]).length, 1);
  await assert.rejects(httpsGet(`https://127.0.0.1:${agg.httpPort}/v1/catalog/nodes`, undefined), /self-signed|certificate/);
});

function httpsGet(url: string, ca: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, { ca }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

test('a bad request reaches the log clipped: no line carries its raw bytes or more than a few hundred of them', async (t) => {
  const lines: string[] = [];
  const agg = await startAggregator(base, pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) }));
  t.after(() => agg.close());
  const junk = 'é'.repeat(6000);
  const socket = net.connect(agg.httpPort, '127.0.0.1');
  socket.on('error', () => {});
  socket.end(`GET /v1/catalog/nodes HTTP/1.1\r\nHost: x\r\nBad Header ${junk}\r\n\r\n`);
  await until(() => lines.some((l) => l.includes('client error')));
  const logged = lines.find((l) => l.includes('client error'))!;
  assert.ok(!logged.includes('rawPacket'), 'the raw packet is not logged');
  assert.ok(Buffer.byteLength(logged) < 4096, `client error line of ${Buffer.byteLength(logged)} bytes`);
  assert.ok(lines.every((l) => !l.includes('é'.repeat(200))), 'no line carries the junk');
});
