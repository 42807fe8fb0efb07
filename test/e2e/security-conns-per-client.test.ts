import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface, type Interface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { testbedSkipReason, useTestbed } from '../testbed/index.js';
import { until } from '../support/until.js';
import { runCli, type CliProcess } from './support/cli.js';

const skip = await testbedSkipReason();
const holder = fileURLToPath(new URL('./support/hold-connections.mjs', import.meta.url));
/** The default of --http-max-conns-per-client (Consul's http_max_conns_per_client). */
const PER_CLIENT = 200;
const OPENED = 300;
const CONSUL_429_TEXT = 'Your IP is issuing too many concurrent connections, please rate limit your calls\n';

interface Report {
  open: number;
  refused: number;
  answered: number;
  closed: number;
}

describe(`--http-max-conns-per-client (default ${PER_CLIENT}): one host's ${OPENED} connections cannot crowd out another host`, { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  let aggregator: CliProcess;
  let port = 0;
  let hold: ChildProcess | undefined;
  let reports: Interface | undefined;

  before(async () => {
    // No agents: host a's only connections to the aggregator are the ones this test opens.
    aggregator = runCli(['aggregator', '--http', '0.0.0.0:0', '--dns', '127.0.0.1:0']);
    port = Number(String((await aggregator.waitForLog((l) => l.msg === 'aggregator serving')).http).split(':').pop());
  });
  after(async () => {
    hold?.stdin?.end();
    await aggregator?.stop();
  });

  const url = (path: string) => `http://${bed().gatewayAddress}:${port}${path}`;
  const report = async (): Promise<Report> => {
    const line = once(reports!, 'line');
    hold!.stdin!.write('report\n');
    return JSON.parse(String((await line)[0])) as Report;
  };

  it(`${OPENED} blocking queries from host a: ${PER_CLIENT} held, ${OPENED - PER_CLIENT} answered 429 at once`, async () => {
    const index = (await fetch(`http://127.0.0.1:${port}/v1/catalog/services`)).headers.get('x-consul-index');
    // Held until a change or 30 s: a blocking query is a connection like any other.
    hold = await bed().host('a').spawn(process.execPath, [holder, bed().gatewayAddress, String(port), String(OPENED), `/v1/catalog/services?index=${index}&wait=30s`]);
    reports = createInterface({ input: hold.stdout! });
    const settled = await until(async () => {
      const r = await report();
      return r.refused >= OPENED - PER_CLIENT && r;
    }, 15_000, 'the refusals');
    assert.deepEqual(settled, { open: PER_CLIENT, refused: OPENED - PER_CLIENT, answered: 0, closed: 0 });
  });

  it('meanwhile host b is served (200), and one more request from host a gets the 429 and its text', async () => {
    const b = await bed().host('b').http(url('/v1/catalog/services'));
    assert.equal(b.status, 200, b.body);
    const a = await bed().host('a').http(url('/v1/catalog/services'));
    assert.equal(a.status, 429);
    assert.equal(a.body, CONSUL_429_TEXT);
    assert.equal(a.headers['x-portolan-error'], 'PORTOLAN_TOO_MANY_CONNS_PER_CLIENT');
    assert.deepEqual(await report(), { open: PER_CLIENT, refused: OPENED - PER_CLIENT, answered: 0, closed: 0 }, 'the held ones still held');
  });

  it('the refusals are counted in /metrics and logged with host a\'s address; once a closes its connections it is served again', async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.equal(/^portolan_http_connections_refused_per_client_total (\d+)$/m.exec(metrics)?.[1], String(OPENED - PER_CLIENT + 1));
    const warned = aggregator.logs.find((l) => String(l.msg).includes('--http-max-conns-per-client'));
    assert.equal(warned?.client, bed().host('a').address);
    hold!.stdin!.end();
    await once(hold!, 'exit');
    const again = await until(async () => {
      const r = await bed().host('a').http(url('/v1/catalog/services'));
      return r.status === 200 && r;
    }, 5000, 'host a served again');
    assert.equal(again.status, 200);
  });
});
