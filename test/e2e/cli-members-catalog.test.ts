import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testbedSkipReason, useTestbed } from '../testbed/index.js';
import { until } from '../support/until.js';
import { VERSION } from '../../shared/version.js';
import { runCliOnce } from './support/cli.js';
import { useCluster } from './support/cluster.js';
import { runWeb } from './support/faults.js';

const skip = await testbedSkipReason();
const TOKEN = 'members-test-token';

/** Each line's cells start where the header's do (columns as Consul's CLI aligns them). */
function assertAligned(table: string): string[][] {
  const [header, ...rows] = table.trimEnd().split('\n');
  const starts = [...header!.matchAll(/\S+/g)].map((m) => m.index);
  for (const row of rows) {
    for (const start of starts.slice(1)) assert.match(row.slice(start - 2, start + 1), /^ {2}\S$/, `a column of "${row}" does not start at ${start}:\n${table}`);
  }
  return [header!, ...rows].map((l) => l.trim().split(/ {2,}/));
}

describe('portolan members and portolan catalog services|nodes against a real aggregator and real agents', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  const cluster = useCluster(bed, { aggregatorArgs: ['--name', 'agg', '--api-token', TOKEN] });
  /** Consul's CLI variables: where the API is and its token. */
  const env = () => ({ CONSUL_HTTP_ADDR: `127.0.0.1:${cluster().httpPort}`, CONSUL_HTTP_TOKEN: TOKEN });
  const portolan = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => runCliOnce(args, { ...env(), ...extraEnv });
  const address = (name: string) => bed().host(name).address;

  it('members: the aggregator as server, then each host with its address, alive, client, the agent version and DC', async () => {
    const r = await portolan(['members']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(assertAligned(r.out), [
      ['Node', 'Address', 'Status', 'Type', 'Build', 'DC'],
      ['agg', '127.0.0.1', 'alive', 'server', VERSION, 'dc1'],
      ['a', address('a'), 'alive', 'client', VERSION, 'dc1'],
      ['b', address('b'), 'alive', 'client', VERSION, 'dc1'],
    ]);
  });

  it('members --json: the same members for scripts, with node meta as Tags', async () => {
    const r = await portolan(['members', '--json']);
    assert.equal(r.code, 0, r.err);
    const list = JSON.parse(r.out) as Array<{ Node: string; Address: string; Status: string; Type: string; Build: string; Datacenter: string; Tags: Record<string, string> }>;
    assert.deepEqual(list.map((m) => [m.Node, m.Address, m.Status, m.Type, m.Build, m.Datacenter]), [
      ['agg', '127.0.0.1', 'alive', 'server', VERSION, 'dc1'],
      ['a', address('a'), 'alive', 'client', VERSION, 'dc1'],
      ['b', address('b'), 'alive', 'client', VERSION, 'dc1'],
    ]);
    assert.equal(list[1]!.Tags['portolan-agent-version'], VERSION);
    assert.match(list[1]!.Tags['docker-version'] ?? '', /^\d+\./);
  });

  it('members without the token: exit 1 with the API\'s 403 on stderr; a bad --http-addr is a usage error (exit 2)', async () => {
    const r = await portolan(['members'], { CONSUL_HTTP_TOKEN: '' });
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.match(r.err, /: 403 /);
    const bad = await portolan(['members', '--http-addr', 'ftp://x:1']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--http-addr must be an http:\/\/ or https:\/\/ address/);
  });

  it('members after an agent is killed: its host is failed (serfHealth critical); --status filters, exit 2 when none match', async () => {
    await cluster().agent('b').stop('SIGKILL');
    const failed = await until(async () => {
      const r = await portolan(['members', '--status', 'failed']);
      return r.code === 0 && r.out;
    }, 15_000, 'b failed in portolan members');
    assert.deepEqual(assertAligned(failed).slice(1), [['b', address('b'), 'failed', 'client', VERSION, 'dc1']]);
    const alive = await portolan(['members', '-status=alive']);
    assert.deepEqual(assertAligned(alive.out).slice(1).map((row) => row[0]), ['agg', 'a']);
    const none = await portolan(['members', '--status', '^left$']);
    assert.deepEqual([none.code, none.out], [2, '']);
    await cluster().startAgent(bed().host('b'));
    await until(async () => (await portolan(['members', '--status', 'failed'])).code === 2, 15_000, 'b alive again');
  });

  it('members --detailed: Node, Address, Status and each member\'s tags as key=value', async () => {
    const r = await portolan(['members', '--detailed']);
    assert.equal(r.code, 0, r.err);
    const rows = assertAligned(r.out);
    assert.deepEqual(rows[0], ['Node', 'Address', 'Status', 'Tags']);
    assert.match(rows[1]![3]!, /^dc=dc1,.*role=portolan,vsn=/);
    assert.match(rows[2]![3]!, new RegExp(`(^|,)portolan-agent-version=${VERSION.replaceAll('.', '\\.')}(,|$)`));
  });

  it('catalog services: names one a line; -tags as Consul (names padded, six spaces, sorted tags); -node; --json', async () => {
    await runWeb(bed().host('a'), 'cli-web', 7781, 'cliweb', ['-e', 'SERVICE_TAGS=blue,canary']);
    await runWeb(bed().host('b'), 'cli-db', 7782, 'clidb-primary', ['-e', 'SERVICE_TAGS=pg']);
    const listed = await until(async () => {
      const r = await portolan(['catalog', 'services']);
      return r.out.includes('cliweb\n') && r.out.includes('clidb-primary\n') && r;
    }, 15_000, 'both services in portolan catalog services');
    assert.equal(listed.code, 0);
    assert.deepEqual(listed.out.split('\n').filter((l) => l.startsWith('cli')), ['clidb-primary', 'cliweb']);
    const tags = await portolan(['catalog', 'services', '-tags', '-node', 'a']);
    assert.equal(tags.out, 'cliweb      blue,canary\n');
    const json = await portolan(['catalog', 'services', '--json']);
    assert.deepEqual((JSON.parse(json.out) as Record<string, string[]>).cliweb, ['blue', 'canary']);
    const none = await portolan(['catalog', 'services', '--node-meta', 'os=plan9']);
    assert.deepEqual([none.code, none.out, none.err], [0, '', 'No services match the given query - try expanding your search.\n']);
  });

  it('catalog nodes: Node, ID (first group), Address, DC; -service picks the hosts of a service; -detailed adds node meta', async () => {
    const r = await portolan(['catalog', 'nodes', '-http-addr', `http://127.0.0.1:${cluster().httpPort}`]);
    assert.equal(r.code, 0, r.err);
    const rows = assertAligned(r.out);
    assert.deepEqual(rows[0], ['Node', 'ID', 'Address', 'DC']);
    assert.deepEqual(rows.slice(1).map((row) => [row[0], row[2], row[3]]), [['a', address('a'), 'dc1'], ['b', address('b'), 'dc1']]);
    for (const row of rows.slice(1)) assert.match(row[1]!, /^[0-9a-f]{8}$/);
    const web = await portolan(['catalog', 'nodes', '--service', 'cliweb']);
    assert.deepEqual(assertAligned(web.out).slice(1).map((row) => row[0]), ['a']);
    const detailed = await portolan(['catalog', 'nodes', '--detailed', '--node-meta', `portolan-agent-version=${VERSION}`]);
    const drows = assertAligned(detailed.out);
    assert.deepEqual(drows[0], ['Node', 'ID', 'Address', 'DC', 'TaggedAddresses', 'Meta']);
    assert.match(drows[1]![1]!, /^[0-9a-f]{8}-[0-9a-f]{4}-/);
    assert.match(drows[1]![5]!, new RegExp(`portolan-agent-version=${VERSION.replaceAll('.', '\\.')}`));
    const json = await portolan(['catalog', 'nodes', '--json']);
    assert.deepEqual((JSON.parse(json.out) as Array<{ Node: string }>).map((n) => n.Node), ['a', 'b']);
  });
});
