import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run } from '../testbed/processes.js';

/**
 * docker-compose.multihost.yml as Debian's `docker-compose` (v1.29, which knows profiles) reads
 * it: `config` validates the file against the compose schema and interpolates it; python3-yaml
 * (a dependency of docker-compose) turns its output into JSON for the assertions.
 */
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const FILE = 'docker-compose.multihost.yml';

interface ComposeConfig {
  services: Record<string, {
    command?: string[];
    environment?: Record<string, string>;
    /** docker-compose v1 prints the long form, but keeps `IP:PORT:TARGET/PROTO` strings as written. */
    ports?: Array<string | { target: number; published: number | string; protocol: string; host_ip?: string }>;
    profiles?: string[];
    volumes?: string[];
    image?: string;
    networks?: Record<string, { aliases?: string[] } | null>;
    depends_on?: Record<string, unknown> | string[];
  }>;
  volumes?: Record<string, unknown>;
}

async function skipReason(): Promise<string | undefined> {
  const probe = await run('docker-compose', ['version']).catch(() => undefined);
  if (probe?.code === 0) return undefined;
  const reason = 'docker-compose (Debian package docker-compose) is not installed';
  if (process.env.CI === 'true') throw new Error(`COMPOSE TEST CANNOT RUN under CI=true: ${reason}`);
  process.stderr.write(`\nCOMPOSE TEST SKIPPED: ${reason}\n\n`);
  return reason;
}

/** A published port as `[hostIp]:published->target/protocol`, from either form. */
function portText(p: NonNullable<ComposeConfig['services'][string]['ports']>[number]): string {
  if (typeof p !== 'string') return `${p.host_ip ? `${p.host_ip}:` : ''}${p.published}->${p.target}/${p.protocol}`;
  const m = /^(?:(.+):)?(\d+):(\d+)\/(tcp|udp)$/.exec(p);
  assert.ok(m, `unexpected port entry ${p}`);
  return `${m[1] ? `${m[1]}:` : ''}${m[2]}->${m[3]}/${m[4]}`;
}

/** `docker-compose config` with only the given variables set (none inherited from this shell). */
async function composeConfig(profile: string, vars: Record<string, string>): Promise<{ code: number | null; stderr: string; config?: ComposeConfig }> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ...vars };
  const r = await run('bash', ['-o', 'pipefail', '-c', `cd "$1" && docker-compose -f ${FILE} --profile ${profile} config | python3 -c 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'`, 'bash', repoRoot], { env });
  return { code: r.code, stderr: r.stderr, config: r.code === 0 ? (JSON.parse(r.stdout) as ComposeConfig) : undefined };
}

describe(`${FILE} validates with docker-compose`, { skip: await skipReason() }, () => {
  it('the agent profile: the aggregator URL, host IP and node from the environment, the Docker socket mounted', async () => {
    const r = await composeConfig('agent', { PORTOLAN_AGGREGATOR: 'ws://10.0.0.1:8500', PORTOLAN_IP: '10.0.0.7', PORTOLAN_NODE: 'web-7' });
    assert.equal(r.code, 0, r.stderr);
    const agent = r.config!.services.agent!;
    assert.deepEqual(agent.profiles, ['agent']);
    assert.deepEqual(agent.command, ['agent']);
    assert.equal(agent.environment!.PORTOLAN_AGGREGATOR, 'ws://10.0.0.1:8500');
    assert.equal(agent.environment!.PORTOLAN_IP, '10.0.0.7');
    assert.equal(agent.environment!.PORTOLAN_NODE, 'web-7');
    assert.ok(agent.volumes!.some((v) => v.startsWith('/var/run/docker.sock:/var/run/docker.sock')), String(agent.volumes));
    assert.equal(agent.ports, undefined, 'the agent publishes nothing');
  });

  it('the aggregator profile needs no agent variables and publishes HTTP and DNS (UDP and TCP)', async () => {
    const r = await composeConfig('aggregator', {});
    assert.equal(r.code, 0, r.stderr);
    const aggregator = r.config!.services.aggregator!;
    assert.deepEqual(aggregator.profiles, ['aggregator']);
    assert.deepEqual(aggregator.command, ['aggregator']);
    const ports = aggregator.ports!.map(portText).sort();
    assert.deepEqual(ports, ['8500->8500/tcp', '8600->8600/tcp', '8600->8600/udp']);
  });

  it('DNS can be published on port 53 of one address', async () => {
    const r = await composeConfig('aggregator', { PORTOLAN_DNS_PUBLISH: '10.0.0.1:53' });
    assert.equal(r.code, 0, r.stderr);
    const ports = r.config!.services.aggregator!.ports!.map(portText).sort();
    assert.deepEqual(ports, ['10.0.0.1:53->8600/tcp', '10.0.0.1:53->8600/udp', '8500->8500/tcp']);
  });

  it('a malformed port setting is rejected by the schema', async () => {
    const r = await composeConfig('aggregator', { PORTOLAN_DNS_PUBLISH: 'not-a-port' });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /services\.aggregator\.ports .*invalid/);
  });

  it('the ha profile: a 3-member etcd cluster, two aggregators on it behind one network alias, and an agent that connects by that name', async () => {
    const r = await composeConfig('ha', {});
    assert.equal(r.code, 0, r.stderr);
    const services = r.config!.services;
    const members = ['etcd-1', 'etcd-2', 'etcd-3'];
    for (const m of members) {
      const etcd = services[m]!;
      assert.deepEqual(etcd.profiles, ['ha'], m);
      const flags = etcd.command!.join(' ');
      assert.match(flags, new RegExp(`--name ${m} `), `${m}: ${flags}`);
      assert.match(flags, new RegExp(`--advertise-client-urls http://${m}:2379`), `${m}: ${flags}`);
      assert.match(flags, new RegExp(`--initial-advertise-peer-urls http://${m}:2380`), `${m}: ${flags}`);
      assert.equal(etcd.environment!.ETCD_INITIAL_CLUSTER, members.map((x) => `${x}=http://${x}:2380`).join(','), m);
      assert.equal(etcd.environment!.ETCD_INITIAL_CLUSTER_STATE, 'new');
      assert.ok(etcd.volumes!.some((v) => v.startsWith(`${m}:/var/lib/etcd`)), `${m} keeps its data in its own volume: ${etcd.volumes}`);
      assert.equal(etcd.ports, undefined, `${m} publishes nothing: only the aggregators talk to etcd`);
    }
    assert.deepEqual(Object.keys(r.config!.volumes ?? {}).sort(), members);
    const published: string[] = [];
    for (const name of ['aggregator-1', 'aggregator-2']) {
      const a = services[name]!;
      assert.deepEqual(a.profiles, ['ha'], name);
      assert.deepEqual(a.command, ['aggregator']);
      assert.equal(a.environment!.PORTOLAN_STORE, 'etcd://etcd-1:2379,etcd-2:2379,etcd-3:2379', name);
      assert.equal(a.environment!.PORTOLAN_NAME, name);
      assert.deepEqual(a.networks?.default?.aliases, ['portolan'], `${name} answers to the shared name`);
      published.push(...a.ports!.map(portText));
    }
    assert.deepEqual(published.sort(), ['8500->8500/tcp', '8501->8500/tcp', '8600->8600/tcp', '8600->8600/udp', '8601->8600/tcp', '8601->8600/udp']);
    const agent = services['agent-ha']!;
    assert.deepEqual(agent.profiles, ['ha']);
    assert.equal(agent.environment!.PORTOLAN_AGGREGATOR, 'ws://portolan:8500');
    assert.ok(agent.volumes!.some((v) => v.startsWith('/var/run/docker.sock:/var/run/docker.sock')), String(agent.volumes));
    // The non-HA profiles are unchanged: the single aggregator keeps the memory store.
    assert.equal(services.aggregator!.environment!.PORTOLAN_STORE, undefined);
  });

  it('the ha profile: the second aggregator\'s ports and the etcd image can be set', async () => {
    const r = await composeConfig('ha', { PORTOLAN_HTTP_PUBLISH_2: '9500', PORTOLAN_DNS_PUBLISH_2: '10.0.0.2:53', PORTOLAN_ETCD_IMAGE: 'registry.example/etcd:3.4' });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.config!.services['aggregator-2']!.ports!.map(portText).sort(), ['10.0.0.2:53->8600/tcp', '10.0.0.2:53->8600/udp', '9500->8500/tcp']);
    assert.equal(r.config!.services['etcd-1']!.image, 'registry.example/etcd:3.4');
  });
});
