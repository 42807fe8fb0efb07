import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { TEST_IMAGE, TEST_PAGE, testbedSkipReason, useTestbed, type Host } from '../testbed/index.js';
import { until } from '../support/until.js';
import { httpd } from './support/agent-suite.js';
import { CatalogClient, containerIp, type CatalogEntry } from './support/catalog-client.js';
import { useCluster } from './support/cluster.js';
import { digFrom } from './support/dig.js';

const skip = await testbedSkipReason();

const OVERLAY = 'ov';
const MACVLAN = 'mv';

const gatewayOf = (host: Host, network: string): Promise<string> => host.docker(['network', 'inspect', network, '-f', '{{(index .IPAM.Config 0).Gateway}}']);

/** One instance of `name` registered at exactly this address and port. */
async function registeredAt(catalog: CatalogClient, name: string, address: string, port: number): Promise<CatalogEntry> {
  return until(async () => {
    const entries = await catalog.service(name);
    return entries.length === 1 && entries[0]!.ServiceAddress === address && entries[0]!.ServicePort === port ? entries[0] : undefined;
  }, 15_000, `${name} at ${address}:${port}`);
}

/** busybox nc in a container: an HTTP GET to address:port, the response's body (its last newline trimmed, as docker() does). */
async function httpFromContainer(host: Host, container: string, address: string, port: number): Promise<string> {
  const out = await host.docker(['exec', container, 'sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${address} ${port}`]);
  return out.split('\r\n\r\n').slice(1).join('\r\n\r\n');
}

describe('virtual networks: swarm overlay and macvlan container IPs are advertised, published ports stay host IP + port, --advertise and SERVICE_ADVERTISE flip it', { skip }, () => {
  const bed = useTestbed({ hosts: ['a', 'b'] });
  const host = (name: string): Host => bed().host(name);
  // The swarm and its attachable overlay exist before the agents start (they list networks at start).
  before(async () => {
    await bed().swarm(['a', 'b']);
    await host('a').docker(['network', 'create', '-d', 'overlay', '--attachable', '--subnet', '10.77.0.0/24', OVERLAY]);
  });
  const cluster = useCluster(bed, { agentArgs: ['--local-dns', 'auto'] });
  const catalog = new CatalogClient(() => cluster().httpPort);

  it('a container on B on the overlay with no published port is registered at its overlay IP and container port; a container on A on the overlay resolves it through its agent and connects', async () => {
    const [a, b] = [host('a'), host('b')];
    await b.docker(['run', '-d', '--name', 'ovl', '--network', OVERLAY, '-e', 'SERVICE_NAME=ovl', '--expose', '80', TEST_IMAGE, ...httpd(80)]);
    const ip = await containerIp(b, 'ovl', OVERLAY);
    assert.match(ip, /^10\.77\.0\.\d+$/);
    const entry = await registeredAt(catalog, 'ovl', ip, 80);
    assert.equal(entry.Node, 'b');
    assert.deepEqual(entry.ServiceTaggedAddresses?.lan, { Address: ip, Port: 80 });
    assert.equal(entry.ServiceTaggedAddresses?.wan, undefined, 'nothing published: no host endpoint');

    // The client on A asks A's agent (port 53 on the overlay's docker_gwbridge gateway, --local-dns auto).
    const dns = await gatewayOf(a, 'docker_gwbridge');
    await a.docker(['run', '-d', '--name', 'client', '--network', OVERLAY, '--dns', dns, TEST_IMAGE, 'sleep', '3600']);
    const resolved = await until(async () => {
      const out = await a.docker(['exec', 'client', 'nslookup', '-type=a', 'ovl.service.consul']).catch((err: Error) => err.message);
      return out.split('\n\n').slice(1).join('\n').includes(`Address: ${ip}`) ? out : undefined;
    }, 10_000, 'ovl.service.consul from the client on A');
    assert.ok(resolved);
    assert.equal(await httpFromContainer(a, 'client', ip, 80), TEST_PAGE.trimEnd());
  });

  it('network events: a bridge-only container joining the overlay is registered at its overlay IP, and withdrawn when it leaves', async (t) => {
    const b = host('b');
    await b.docker(['run', '-d', '--name', 'joiner', '-e', 'SERVICE_NAME=joiner', '--expose', '80', TEST_IMAGE, ...httpd(80)]);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await catalog.service('joiner'), [], 'on the default bridge, unpublished: not reachable from other hosts');
    await b.docker(['network', 'connect', OVERLAY, 'joiner']);
    const connected = performance.now();
    await registeredAt(catalog, 'joiner', await containerIp(b, 'joiner', OVERLAY), 80);
    const joinedMs = performance.now() - connected;
    await b.docker(['network', 'disconnect', OVERLAY, 'joiner']);
    const disconnected = performance.now();
    await until(async () => ((await catalog.service('joiner')).length === 0 ? true : undefined), 10_000, 'joiner withdrawn');
    t.diagnostic(`registered ${Math.round(joinedMs)} ms after docker network connect returned, withdrawn ${Math.round(performance.now() - disconnected)} ms after disconnect`);
  });

  it("a macvlan container on A's eth0 is advertised at its macvlan IP; host B resolves it and connects", async () => {
    const [a, b] = [host('a'), host('b')];
    await bed().macvlan('a', MACVLAN);
    await a.docker(['run', '-d', '--name', 'mvc', '--network', MACVLAN, '-e', 'SERVICE_NAME=mvc', '--expose', '80', TEST_IMAGE, ...httpd(80)]);
    const ip = await containerIp(a, 'mvc', MACVLAN);
    assert.ok(ip.startsWith(a.address.replace(/\.\d+$/, '.')), `${ip} is on the test network`);
    await registeredAt(catalog, 'mvc', ip, 80);
    const answer = await digFrom(b, bed().gatewayAddress, cluster().dnsPort, 'mvc.service.consul', 'A');
    assert.deepEqual(answer.answer.map((r) => r.data), [ip]);
    assert.equal((await b.http(`http://${ip}:80/`)).body, TEST_PAGE);
  });

  it('the default bridge with a published port: host IP + published port under auto; SERVICE_ADVERTISE=container and SERVICE_80_ADVERTISE=host flip it per container and per port', async () => {
    const b = host('b');
    await b.docker(['run', '-d', '--name', 'pub', '-e', 'SERVICE_NAME=pub', '-p', '7690:80', TEST_IMAGE, ...httpd(80)]);
    await b.docker(['run', '-d', '--name', 'pubc', '-e', 'SERVICE_NAME=pubc', '-e', 'SERVICE_ADVERTISE=container', '-p', '7691:80', TEST_IMAGE, ...httpd(80)]);
    await b.docker(['run', '-d', '--name', 'ovh', '--network', OVERLAY, '-e', 'SERVICE_NAME=ovh', '-e', 'SERVICE_ADVERTISE=container', '-e', 'SERVICE_80_ADVERTISE=host', '-p', '7692:80', TEST_IMAGE, ...httpd(80)]);
    const pub = await registeredAt(catalog, 'pub', b.address, 7690);
    assert.deepEqual(pub.ServiceTaggedAddresses?.lan, { Address: await containerIp(b, 'pub', 'bridge'), Port: 80 });
    await registeredAt(catalog, 'pubc', await containerIp(b, 'pubc', 'bridge'), 80);
    await registeredAt(catalog, 'ovh', b.address, 7692);
  });

  it('--advertise container flips the published port to the container IP; --advertise host drops the unpublished overlay port', async () => {
    const b = host('b');
    const restart = async (args: string[]) => {
      await cluster().agent('b').stop();
      await cluster().startAgent(b, args);
    };
    await restart(['--advertise', 'container']);
    await registeredAt(catalog, 'pub', await containerIp(b, 'pub', 'bridge'), 80);
    await registeredAt(catalog, 'ovl', await containerIp(b, 'ovl', OVERLAY), 80);
    await restart(['--advertise', 'host']);
    await registeredAt(catalog, 'pub', b.address, 7690);
    await registeredAt(catalog, 'pubc', await containerIp(b, 'pubc', 'bridge'), 80);
    await until(async () => ((await catalog.service('ovl')).length === 0 ? true : undefined), 10_000, 'ovl not registered under --advertise host');
  });
});
