import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { createServer } from 'node:http';
import { BlockList, type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { TEST_IMAGE, TEST_PAGE, Testbed, testbedSkipReason, useTestbed, type Host } from '../testbed/index.js';
import { isAlive, runOk, waitForExit } from '../testbed/processes.js';
import { reclaimStaleSlots } from '../testbed/slot.js';

const skip = await testbedSkipReason();

async function runWeb(host: Host, hostPort: number): Promise<string> {
  return host.docker(['run', '-d', '-p', `${hostPort}:80`, TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
}

/** A web server container on a network, by name. */
async function runNamedWeb(host: Host, name: string, network: string): Promise<void> {
  await host.docker(['run', '-d', '--name', name, '--network', network, TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
}

/** Container addresses on one network: IPv4 and IPv6 (empty when it has none there). */
async function addressesOn(host: Host, container: string, network: string): Promise<{ v4: string; v6: string }> {
  const format = `{{with index .NetworkSettings.Networks "${network}"}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}`;
  const [v4 = '', v6 = ''] = (await host.docker(['inspect', '-f', format, container])).split(' ');
  return { v4, v6 };
}

/** The body of GET / from port 80 of `target` (a name or an IP) by busybox nc inside a running container; last newline trimmed, as by docker(). */
async function ncGet(host: Host, container: string, target: string): Promise<string> {
  const response = await host.docker(['exec', container, 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${target} 80`]);
  return response.slice(response.indexOf('\r\n\r\n') + 4);
}

function inCidr(address: string, cidr: string): boolean {
  const [base = '', bits] = cidr.split('/');
  const family = base.includes(':') ? 'ipv6' : 'ipv4';
  const list = new BlockList();
  list.addSubnet(base, Number(bits), family);
  return list.check(address, family);
}

/** Everything of a slot that teardown must remove, as found on the machine right now. */
async function slotTraces(slot: number): Promise<string[]> {
  const mine = new RegExp(`^ptl${slot}(-|$)`);
  const namespaces = (await runOk('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0] ?? '');
  const links = (JSON.parse(await runOk('ip', ['-j', 'link', 'show'])) as Array<{ ifname: string }>).map((l) => l.ifname);
  const firewalls = await Promise.all(['iptables', 'ip6tables'].map((cmd) => runOk(cmd, ['-w', '-S', 'FORWARD'])));
  const rules = firewalls.join('\n').split('\n').filter((r) => r.includes(` ptl${slot} `));
  const routes = (await runOk('ip', ['-6', 'route', 'show'])).split('\n').filter((r) => new RegExp(`dev ptl${slot}( |$)`).test(r));
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((m) => m.includes(`/ptl-testbed/${slot}/`));
  const cgroups = (await readdir('/sys/fs/cgroup/memory')).filter((name) => mine.test(name));
  return [
    ...namespaces.filter((n) => mine.test(n)).map((n) => `netns ${n}`),
    ...links.filter((n) => mine.test(n)).map((n) => `link ${n}`),
    ...rules.map((r) => `iptables ${r}`),
    ...routes.map((r) => `route ${r}`),
    ...mounts.map((m) => `mount ${m}`),
    ...cgroups.map((c) => `cgroup ${c}`),
    ...(existsSync(`/tmp/ptl-testbed/${slot}`) ? [`dir /tmp/ptl-testbed/${slot}`] : []),
  ];
}

async function namespacePids(host: Host): Promise<number[]> {
  return (await runOk('ip', ['netns', 'pids', host.ns])).split('\n').filter(Boolean).map(Number);
}

async function allDead(pids: readonly number[]): Promise<number[]> {
  const alive: number[] = [];
  for (const pid of pids) if (await isAlive(pid)) alive.push(pid);
  return alive;
}

const testbedModule = fileURLToPath(new URL('../testbed/index.ts', import.meta.url));

/** A separate node process that brings up a one-host testbed, reports it and waits to be killed. */
async function startTestbedProcess(): Promise<{ pid: number; slot: number; enginePid: number }> {
  const script = `
    import { Testbed } from ${JSON.stringify(testbedModule)};
    const bed = await Testbed.start({ hosts: ['x'] });
    await bed.host('x').docker(['run', '-d', 'portolan-test:latest', 'sleep', '600']);
    console.log(JSON.stringify({ slot: bed.slot, enginePid: bed.host('x').engine.runningPid }));
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  return { pid: child.pid!, ...(JSON.parse(line.toString()) as { slot: number; enginePid: number }) };
}

describe('testbed: two hosts, each with its own engine', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });

  it('serves a port published on B to A at B address', async () => {
    const [a, b] = [bed().host('a'), bed().host('b')];
    await runWeb(b, 7680);
    const wget = await a.exec('busybox', ['wget', '-qO-', `http://${b.address}:7680/`]);
    assert.equal(wget.stdout, TEST_PAGE, wget.stderr);
    const res = await a.http(`http://${b.address}:7680/`);
    assert.equal(res.status, 200);
    assert.equal(res.body, TEST_PAGE);
  });

  it('serves a port published on B to A at B IPv6 address: Docker binds it on 0.0.0.0 and ::', async () => {
    const [a, b] = [bed().host('a'), bed().host('b')];
    const web = await runWeb(b, 7683);
    const ports = JSON.parse(await b.docker(['inspect', '-f', '{{json .NetworkSettings.Ports}}', web])) as Record<string, unknown>;
    assert.deepEqual(ports['80/tcp'], [{ HostIp: '0.0.0.0', HostPort: '7683' }, { HostIp: '::', HostPort: '7683' }]);
    assert.equal((await a.http(`http://[${b.address6}]:7683/`)).body, TEST_PAGE);
  });

  it('gives each host its IPv4 and IPv6 address on the default routes, via the gateway, none tentative', async () => {
    const escape = (text: string) => text.replaceAll('.', '\\.');
    for (const host of bed().hosts) {
      const route = await host.exec('ip', ['-4', 'route', 'show', 'default']);
      assert.match(route.stdout, new RegExp(`^default via ${escape(bed().gatewayAddress)} dev eth0`));
      const get = await host.exec('ip', ['-4', 'route', 'get', '198.51.100.1']);
      assert.match(get.stdout, new RegExp(`src ${escape(host.address)} `));
      const route6 = await host.exec('ip', ['-6', 'route', 'show', 'default']);
      assert.match(route6.stdout, new RegExp(`^default via ${escape(bed().gatewayAddress6)} dev eth0`));
      const get6 = await host.exec('ip', ['-6', 'route', 'get', '2001:db8::1']);
      assert.match(get6.stdout, new RegExp(`src ${escape(host.address6)} `));
      assert.equal((await host.exec('ip', ['-6', 'addr', 'show', 'tentative'])).stdout, '');
    }
  });

  it('reaches a server in the root namespace at the gateway addresses, IPv4 and IPv6', async (t) => {
    const server = createServer((_req, res) => res.end('root namespace'));
    server.listen(0, '::');
    await once(server, 'listening');
    t.after(() => server.close());
    const { port } = server.address() as AddressInfo;
    const a = bed().host('a');
    assert.equal((await a.http(`http://${bed().gatewayAddress}:${port}/`)).body, 'root namespace');
    assert.equal((await a.http(`http://[${bed().gatewayAddress6}]:${port}/`)).body, 'root namespace');
  });

  it('keeps the engines apart: own containers, own engine ID', async () => {
    const [a, b] = [bed().host('a'), bed().host('b')];
    const onB = await b.docker(['run', '-d', '--name', 'same', TEST_IMAGE, 'sleep', '600']);
    const onA = await a.docker(['run', '-d', '--name', 'same', TEST_IMAGE, 'sleep', '600']);
    assert.notEqual(onA, onB);
    assert.ok(!(await a.docker(['ps', '-q', '--no-trunc'])).includes(onB));
    assert.notEqual(await a.docker(['info', '-f', '{{.ID}}']), await b.docker(['info', '-f', '{{.ID}}']));
    const cgroup = await readFile(`/proc/${await b.docker(['inspect', '-f', '{{.State.Pid}}', onB])}/cgroup`, 'utf8');
    assert.match(cgroup, new RegExp(`:/${b.ns}/${onB}`), 'containers live under the engine’s own cgroup parent');
  });

  it('restarts an engine after a crash', async () => {
    const b = bed().host('b');
    const before = await b.docker(['run', '-d', TEST_IMAGE, 'sleep', '600']);
    const oldPid = b.engine.runningPid!;
    await b.killEngine();
    assert.equal(await isAlive(oldPid), false);
    await assert.rejects(b.docker(['ps']));
    await b.startEngine();
    assert.notEqual(b.engine.runningPid, oldPid);
    assert.match(await b.docker(['inspect', '-f', '{{.State.Status}}', before]), /exited/);
    await runWeb(b, 7681);
    assert.equal((await bed().host('a').http(`http://${b.address}:7681/`)).body, TEST_PAGE);
  });

  it('stops an engine gracefully and starts it again', async () => {
    const a = bed().host('a');
    await a.stopEngine();
    await assert.rejects(a.docker(['ps']));
    await a.startEngine();
    assert.equal(await a.docker(['run', '--rm', TEST_IMAGE, 'echo', 'back']), 'back');
  });

  it('partitions a host and heals it', async () => {
    const [a, b] = [bed().host('a'), bed().host('b')];
    await runWeb(b, 7682);
    await bed().partition('b');
    await assert.rejects(a.http(`http://${b.address}:7682/`, { timeoutMs: 1_000 }));
    await bed().heal('b');
    assert.equal((await a.http(`http://${b.address}:7682/`)).body, TEST_PAGE);
  });

  it('tracks processes spawned in a host and stops them at teardown', async () => {
    const child = await bed().host('a').spawn('busybox', ['nc', '-l', '-p', '9000']);
    assert.ok(await isAlive(child.pid!));
  });

  it('tears down everything it made, by PID', async (t) => {
    const started = Date.now();
    const pids = (await Promise.all(bed().hosts.map(namespacePids))).flat();
    assert.ok(pids.length >= 4, 'dockerd and containerd per host');
    await bed().stop();
    t.diagnostic(`teardown of 2 hosts with running containers: ${Date.now() - started} ms`);
    assert.deepEqual(await allDead(pids), []);
    assert.deepEqual(await slotTraces(bed().slot), []);
  });
});

describe('testbed: networks across hosts (container IPv6, swarm overlay, macvlan)', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'], containerIpv6: true });

  it('routes container IPv6: a container on A, A and the root namespace reach a container on B at its GlobalIPv6Address', async () => {
    const [a, b] = [bed().host('a'), bed().host('b')];
    await runNamedWeb(b, 'web6', 'bridge');
    const { v6 } = await addressesOn(b, 'web6', 'bridge');
    assert.ok(inCidr(v6, b.containerPrefix6!), `${v6} in ${b.containerPrefix6}`);
    const client = await a.docker(['run', '-d', TEST_IMAGE, 'sleep', '600']);
    assert.ok(inCidr((await addressesOn(a, client, 'bridge')).v6, a.containerPrefix6!));
    assert.equal(await ncGet(a, client, v6), TEST_PAGE.trimEnd());
    assert.equal((await a.http(`http://[${v6}]/`)).body, TEST_PAGE);
    assert.equal(await (await fetch(`http://[${v6}]/`)).text(), TEST_PAGE);
  });

  it('connects a container on A to one on B over an attachable overlay network of a swarm', async () => {
    const [a, b] = [bed().host('a'), bed().host('b')];
    await bed().swarm(['a', 'b']);
    assert.equal(await a.docker(['info', '-f', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}']), 'active true');
    assert.equal(await b.docker(['info', '-f', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}']), 'active false');
    await a.docker(['network', 'create', '-d', 'overlay', '--attachable', 'ov']);
    await runNamedWeb(b, 'ovweb', 'ov');
    const { v4 } = await addressesOn(b, 'ovweb', 'ov');
    // A long-lived client: the overlay's sandbox on A stays up between the exec calls.
    const client = await a.docker(['run', '-d', '--network', 'ov', TEST_IMAGE, 'sleep', '600']);
    // Docker's embedded DNS on A learns B's container through the swarm's gossip.
    await waitFor(async () => (await a.docker(['exec', client, 'nslookup', 'ovweb', '127.0.0.11']).catch(() => '')).includes(`Address: ${v4}`), 'A resolves ovweb');
    assert.equal(await ncGet(a, client, 'ovweb'), TEST_PAGE.trimEnd());
  });

  it('puts macvlan containers on the test network: reachable from B and the root namespace, not from A itself', async () => {
    const [a, b] = [bed().host('a'), bed().host('b')];
    await bed().macvlan('a', 'mv');
    await runNamedWeb(a, 'mvweb', 'mv');
    const { v4, v6 } = await addressesOn(a, 'mvweb', 'mv');
    assert.ok(inCidr(v4, a.macvlanRanges!.v4), `${v4} in ${a.macvlanRanges!.v4}`);
    assert.ok(inCidr(v6, a.macvlanRanges!.v6), `${v6} in ${a.macvlanRanges!.v6}`);
    assert.equal((await b.http(`http://${v4}/`)).body, TEST_PAGE);
    assert.equal((await b.http(`http://[${v6}]/`)).body, TEST_PAGE);
    assert.equal(await (await fetch(`http://${v4}/`)).text(), TEST_PAGE);
    await assert.rejects(a.http(`http://${v4}/`, { timeoutMs: 2_000 }), 'a macvlan parent cannot reach its children');
  });

  it('tears down the swarm, overlay, macvlan and IPv6 routes with the rest', async (t) => {
    const started = Date.now();
    await bed().stop();
    t.diagnostic(`teardown of a 2-host swarm with overlay and macvlan containers: ${Date.now() - started} ms`);
    assert.deepEqual(await slotTraces(bed().slot), []);
  });
});

describe('testbed: leftovers of a run that did not tear down', { skip }, () => {
  it('a killed run is cleaned up by its guardian process', async () => {
    const run1 = await startTestbedProcess();
    process.kill(run1.pid, 'SIGKILL');
    await waitFor(async () => (await slotTraces(run1.slot)).length === 0, 'the guardian removes the slot');
    assert.equal(await isAlive(run1.enginePid), false);
  });

  it('a run killed together with its guardian is cleaned up by the next start', async () => {
    const run1 = await startTestbedProcess();
    const guardian = await guardianOf(run1.pid);
    process.kill(guardian, 'SIGKILL');
    process.kill(run1.pid, 'SIGKILL');
    assert.ok(await waitForExit(run1.pid, 5_000));
    assert.ok(await isAlive(run1.enginePid), 'the killed run left its engine running');
    assert.notDeepEqual(await slotTraces(run1.slot), []);
    assert.ok((await reclaimStaleSlots()).includes(run1.slot));
    assert.equal(await isAlive(run1.enginePid), false);
    assert.deepEqual(await slotTraces(run1.slot), []);
  });

  it('measures bring-up and teardown of two hosts', async (t) => {
    const started = Date.now();
    const bed = await Testbed.start({ hosts: ['a', 'b'] });
    const up = Date.now();
    await bed.stop();
    t.diagnostic(`two hosts: bring-up ${up - started} ms, teardown ${Date.now() - up} ms`);
    assert.deepEqual(await slotTraces(bed.slot), []);
  });
});

async function waitFor(condition: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await sleep(100);
  }
}

/** The guardian is the one child of a testbed process that runs guardian-main.ts. */
async function guardianOf(pid: number): Promise<number> {
  const children = (await runOk('ps', ['-o', 'pid=,args=', '--ppid', String(pid)])).split('\n');
  const line = children.find((l) => l.includes('guardian-main.ts'));
  assert.ok(line, `no guardian among the children of ${pid}:\n${children.join('\n')}`);
  return Number(line.trim().split(' ')[0]);
}
