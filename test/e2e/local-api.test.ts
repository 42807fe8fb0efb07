import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { testbedSkipReason, useTestbed, type Host } from '../testbed/index.js';
import { useCluster } from './support/cluster.js';
import { digFrom } from './support/dig.js';
import { getJson, msUntil, runWeb } from './support/faults.js';

const skip = await testbedSkipReason();

/** Where each agent serves its local API, inside its host's namespace (the default Consul clients assume). */
const LOCAL_API = '127.0.0.1:8500';
const REAP_AFTER = '4s';
const cli = fileURLToPath(new URL('../../dist/cli/portolan.js', import.meta.url));
/** Debian's python3 (python3-consul is a Debian package): not a pyenv or venv one earlier on PATH. */
const PYTHON = '/usr/bin/python3';

interface HealthEntry {
  Node: { Node: string; Address: string };
  Service: { ID: string; Service: string; Port: number };
  Checks: Array<{ CheckID: string; Status: string; Notes: string; Output: string; ServiceID: string; Type: string }>;
}

/** python-consul (Debian's python3-consul 0.7) against a host's local API, run inside its namespace. */
async function python(host: Host, code: string): Promise<string> {
  const script = `import consul, json\nc = consul.Consul(host='127.0.0.1', port=8500)\n${code}\n`;
  const r = await host.exec(PYTHON, ['-c', script]);
  if (r.code !== 0) throw new Error(`python3 failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout.trim();
}

/** The npm `consul` package against a host's local API, in a node process inside its namespace. */
async function nodeConsul(host: Host, code: string): Promise<string> {
  const script = `import Consul from 'consul';\nconst consul = new Consul({ host: '127.0.0.1', port: 8500 });\n${code}\n`;
  const r = await host.exec(process.execPath, ['--input-type=module', '-e', script]);
  if (r.code !== 0) throw new Error(`node consul failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout.trim();
}

/** `portolan <args>` inside a host's namespace, against its local API. */
async function portolan(host: Host, args: string[]): Promise<{ code: number | null; out: string }> {
  const r = await host.exec(process.execPath, [cli, ...args]);
  return { code: r.code, out: r.stdout + r.stderr };
}

/** A request to a host's local API from inside its namespace. */
const local = (host: Host, path: string, method = 'GET', body?: string) => host.http(`http://${LOCAL_API}${path}`, { method, ...(body === undefined ? {} : { body }) });

describe('the agent\'s local Consul API (--local-api, --data-dir): registrations, TTL checks, maintenance, restarts', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portolan-local-api-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));
  const cluster = useCluster(bed, {
    aggregatorArgs: ['--reap-after', REAP_AFTER],
    agentArgs: ['--local-api', LOCAL_API],
    agentArgsOf: (host) => ['--data-dir', join(dir, host.name)],
  });
  const a = () => bed().host('a');
  const b = () => bed().host('b');
  const health = async (name: string, query = ''): Promise<HealthEntry[]> => (await getJson<HealthEntry[]>(cluster().httpPort, `/v1/health/service/${name}${query}`)).body;
  /** The A answers for a service name, asked from host B at the aggregator's DNS. */
  const dnsFromB = async (name: string): Promise<string[]> => {
    const r = await digFrom(b(), bed().gatewayAddress, cluster().dnsPort, `${name}.service.consul`, 'A');
    return r.answer.filter((x) => x.type === 'A').map((x) => x.data);
  };
  const until = (what: string, probe: () => Promise<boolean>, timeoutMs = 5000) => msUntil(what, probe, performance.now(), timeoutMs);

  it('python-consul registers a service with a TTL check on A: a service of node a in the catalog, critical, not in DNS', async () => {
    await python(a(), "print(c.agent.service.register('pyapp', service_id='pyapp-1', port=9100, tags=['v1'], check=consul.Check.ttl('3s')))");
    await until('pyapp in the catalog', async () => (await health('pyapp')).length === 1);
    const [entry] = await health('pyapp');
    assert.equal(entry!.Node.Node, 'a');
    assert.equal(entry!.Service.Port, 9100);
    const check = entry!.Checks.find((c) => c.ServiceID === 'pyapp-1')!;
    assert.deepEqual([check.CheckID, check.Status, check.Type], ['service:pyapp-1', 'critical', 'ttl']);
    assert.deepEqual(await dnsFromB('pyapp'), []);
  });

  it('a TTL pass makes it passing and resolvable from B; with no pass for the TTL it turns critical with Consul\'s expiry output and leaves DNS', async (t) => {
    await python(a(), "print(c.agent.check.ttl_pass('service:pyapp-1', 'all good'))");
    await until('pyapp passing', async () => (await health('pyapp', '?passing')).length === 1);
    assert.deepEqual(await dnsFromB('pyapp'), [a().address]);
    const lapsed = await until('pyapp critical after its TTL', async () => (await health('pyapp', '?passing')).length === 0, 6000);
    const check = (await health('pyapp'))[0]!.Checks.find((c) => c.CheckID === 'service:pyapp-1')!;
    assert.equal(check.Output, 'TTL expired (last output before timeout follows): all good');
    assert.deepEqual(await dnsFromB('pyapp'), []);
    assert.ok(lapsed < 6000, `lapsed ${lapsed} ms after the test looked`);
    t.diagnostic(`TTL 3 s: out of DNS ${lapsed.toFixed(0)} ms after the pass was seen`);
  });

  it('the npm consul package registers, passes and reads the catalog through the local API (reads forwarded to the aggregator), then deregisters', async () => {
    await nodeConsul(a(), `
      await consul.agent.service.register({ name: 'nodeapp', id: 'nodeapp-1', port: 9200, check: { ttl: '30s', notes: 'heartbeat' } });
      await consul.agent.check.pass({ id: 'service:nodeapp-1', note: 'up' });`);
    // The agent sends what it was told within a few ms, as a Consul agent syncs it: not before its answer.
    await until('nodeapp passing in the catalog', async () => (await health('nodeapp', '?passing')).length === 1);
    const out = await nodeConsul(a(), `
      const seen = await consul.health.service({ service: 'nodeapp', passing: true });
      const self = await consul.agent.self();
      console.log(JSON.stringify({ nodes: seen.map((e) => e.Node.Node), self: self.Config.NodeName }));`);
    assert.deepEqual(JSON.parse(out), { nodes: ['a'], self: 'a' });
    assert.deepEqual(await dnsFromB('nodeapp'), [a().address]);
    const services = JSON.parse((await local(a(), '/v1/agent/services')).body) as Record<string, { Service: string; Port: number }>;
    assert.deepEqual(services['nodeapp-1'], { ...services['nodeapp-1'], Service: 'nodeapp', Port: 9200 });
    await nodeConsul(a(), "await consul.agent.service.deregister('nodeapp-1');");
    await until('nodeapp gone', async () => (await health('nodeapp')).length === 0);
  });

  it('maintenance of a container\'s service: out of DNS at once with the reason as Notes, listed by portolan maint, back on disable', async (t) => {
    await runWeb(a(), 'web-a', 7700);
    await until('web in DNS', async () => (await dnsFromB('web')).length === 1);
    const id = (await health('web'))[0]!.Service.ID;
    const on = await portolan(a(), ['maint', '--enable', '--service', id, '--reason', 'deploying v2']);
    assert.deepEqual(on, { code: 0, out: `Service entered maintenance mode: ${id}\n` });
    const left = await until('web out of DNS', async () => (await dnsFromB('web')).length === 0, 2000);
    const maint = (await health('web'))[0]!.Checks.find((c) => c.CheckID === `_service_maintenance:${id}`);
    assert.deepEqual([maint?.Status, maint?.Notes], ['critical', 'deploying v2']);
    assert.equal((await portolan(a(), ['maint'])).out, `Service:\n  ID:     ${id}\n  Reason: deploying v2\n`);
    assert.deepEqual(await portolan(a(), ['maint', '--disable', '--service', id]), { code: 0, out: `Service left maintenance mode: ${id}\n` });
    const back = await until('web back in DNS', async () => (await dnsFromB('web')).length === 1, 2000);
    t.diagnostic(`service maintenance: out of DNS ${left.toFixed(0)} ms after portolan maint returned, back ${back.toFixed(0)} ms after`);
  });

  it('maintenance of the whole host: every service of A leaves DNS and ?passing with _node_maintenance, comes back on disable', async (t) => {
    await python(a(), "c.agent.service.register('steady', service_id='steady-1', port=9300)");
    await until('steady in DNS', async () => (await dnsFromB('steady')).length === 1);
    assert.equal((await portolan(a(), ['maint', '--enable', '--reason', 'kernel upgrade'])).out, 'Node entered maintenance mode\n');
    const left = await until('A out of DNS', async () => (await dnsFromB('web')).length === 0 && (await dnsFromB('steady')).length === 0, 2000);
    assert.equal((await health('steady', '?passing')).length, 0);
    const node = (await health('steady'))[0]!.Checks.find((c) => c.CheckID === '_node_maintenance');
    assert.deepEqual([node?.Status, node?.Notes, node?.ServiceID], ['critical', 'kernel upgrade', '']);
    assert.match((await portolan(a(), ['maint'])).out, /^Node:\n {2}Name: {3}a\n {2}Reason: kernel upgrade\n$/);
    const listed = await portolan(a(), ['services', '--node', 'a']);
    assert.deepEqual(listed.out.split('\n').filter(Boolean).sort(), ['pyapp', 'steady', 'web']);
    await portolan(a(), ['maint', '--disable']);
    const back = await until('A back in DNS', async () => (await dnsFromB('web')).length === 1 && (await dnsFromB('steady')).length === 1, 2000);
    t.diagnostic(`node maintenance: A out of DNS ${left.toFixed(0)} ms after portolan maint returned, back ${back.toFixed(0)} ms after`);
  });

  it('bad input gets 400 with Consul\'s kind of message, and nothing of it is registered', async () => {
    const cases: Array<[string, string, string, RegExp]> = [
      ['PUT', '/v1/agent/service/register', '{"Name": "x", ', /^Request decode failed: /],
      ['PUT', '/v1/agent/service/register', '{"Name": "bad_name"}', /Name: Invalid service name: must be a DNS label/],
      ['PUT', '/v1/agent/service/register', '{"Name": "p", "Port": 70000}', /Port: Invalid port: must be 0 to 65535/],
      ['PUT', '/v1/agent/service/register', '{"Name": "p", "Port": "80"}', /Port: Invalid port: must be an integer/],
      ['PUT', '/v1/agent/service/register', '{"Name": "p", "Address": "no..where"}', /Address: Invalid address/],
      ['PUT', '/v1/agent/service/register', '{"Name": "p", "Check": {"TTL": "soon"}}', /Check\.TTL: Invalid duration/],
      ['PUT', '/v1/agent/service/register', '{"Name": "p", "Check": {"HTTP": "http://127.0.0.1/"}}', /Interval must be > 0/],
      ['PUT', '/v1/agent/service/register', '{"Name": "p", "Check": {"Args": ["/bin/true"], "Interval": "5s"}}', /Args checks are not run by portolan/],
      ['PUT', '/v1/agent/service/maintenance/pyapp-1', '', /^Missing value for \?enable$/],
      ['PUT', '/v1/agent/maintenance?enable=maybe', '', /^Invalid value for \?enable$/],
      ['PUT', '/v1/agent/check/update/service:pyapp-1', '{"Status": "fine"}', /Status: Invalid check status/],
    ];
    for (const [method, path, body, message] of cases) {
      const r = await local(a(), path, method, body);
      assert.equal(r.status, 400, `${method} ${path} ${body}: ${r.status} ${r.body}`);
      assert.match(r.body, message, `${method} ${path} ${body}`);
    }
    const unknown = await local(a(), '/v1/agent/check/pass/no-such-check', 'PUT');
    assert.deepEqual([unknown.status, unknown.body], [404, 'CheckID "no-such-check" does not have associated TTL']);
    const services = JSON.parse((await local(a(), '/v1/agent/services')).body) as Record<string, unknown>;
    assert.deepEqual(Object.keys(services).filter((id) => !id.startsWith('a:')).sort(), ['pyapp-1', 'steady-1']);
  });

  it('an agent restart with --data-dir brings registrations and maintenance back; a corrupt state file is set aside, not a crash', async (t) => {
    const id = (await health('web'))[0]!.Service.ID;
    await portolan(a(), ['maint', '--enable', '--service', id, '--reason', 'kept']);
    await cluster().agent('a').stop();
    const started = performance.now();
    await cluster().startAgent(a());
    await until('steady back', async () => (await dnsFromB('steady')).length === 1);
    t.diagnostic(`restart with --data-dir: registered service back in DNS ${(performance.now() - started).toFixed(0)} ms after starting the agent`);
    const web = (await health('web'))[0]!;
    assert.equal(web.Checks.find((c) => c.CheckID === `_service_maintenance:${id}`)?.Notes, 'kept');
    assert.equal((await health('pyapp')).length, 1);
    await portolan(a(), ['maint', '--disable', '--service', id]);

    // B's state file broken while its agent is down: B starts empty and says so.
    await cluster().agent('b').stop();
    await writeFile(join(dir, 'b', 'local-api.json'), '{"version": 1, "services": [');
    const restarted = await cluster().startAgent(b());
    assert.ok(restarted.logs.some((l) => l.msg === 'local API state file unreadable: set aside, starting without registrations'));
    assert.equal((await readdir(join(dir, 'b'))).filter((f) => f.startsWith('local-api.json.corrupt-')).length, 1);
  });

  it('kill -9 of the agent: its registered services leave with the node after --reap-after, like any other', async () => {
    await cluster().agent('a').stop('SIGKILL');
    await until('pyapp and steady reaped', async () => (await health('pyapp')).length === 0 && (await health('steady')).length === 0, 10_000);
  });
});
