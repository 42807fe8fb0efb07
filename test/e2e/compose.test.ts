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
  }>;
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
});
