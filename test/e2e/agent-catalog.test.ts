import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TEST_IMAGE, TEST_PAGE, testbedSkipReason } from '../testbed/index.js';
import { dig } from '../support/dig.js';
import { useAgentSuite, httpd } from './support/agent-suite.js';
import { containerIp } from './support/catalog-client.js';
import { until } from '../support/until.js';

const skip = await testbedSkipReason();

/** The registrator declarations of issue 3, each checked in the aggregator's catalog (external mode unless said). */
describe('agent → aggregator catalog: ports, addresses and SERVICE_* metadata', { skip }, () => {
  const { cluster, catalog, host, run, restartAgent } = useAgentSuite();

  it('registers every published port of a container as its own service, reachable from another host', async () => {
    const a = host('a');
    await run(a, ['--name', 'mp', '-e', 'SERVICE_NAME=mp', '-p', '8080:80', '-p', '8443:443', TEST_IMAGE,
      'sh', '-c', `httpd -p 443 -h /www && exec ${httpd(80).join(' ')}`]);
    // One container port published twice: one service per host endpoint.
    await run(a, ['--name', 'twice', '-e', 'SERVICE_NAME=twice', '-p', '9080:80', '-p', '9081:80', TEST_IMAGE, ...httpd(80)]);

    const [web] = await catalog.waitForService('mp-80', 1);
    const [tls] = await catalog.waitForService('mp-443', 1);
    assert.deepEqual([web!.ServiceID, web!.ServiceAddress, web!.ServicePort], ['a:mp:80', a.address, 8080]);
    assert.deepEqual([tls!.ServiceID, tls!.ServiceAddress, tls!.ServicePort], ['a:mp:443', a.address, 8443]);
    const twice = await catalog.waitForService('twice', 2);
    assert.deepEqual(twice.map((e) => [e.ServiceID, e.ServicePort]), [['a:twice:80-9080', 9080], ['a:twice:80-9081', 9081]]);

    for (const e of [web!, tls!, ...twice]) {
      const page = await host('b').http(`http://${e.ServiceAddress}:${e.ServicePort}/`);
      assert.equal(page.body, TEST_PAGE, `${e.ServiceID} serves the page`);
    }
  });

  it('collapses the 0.0.0.0 and :: bindings of one port into one service', async () => {
    const a = host('a');
    await run(a, ['--name', 'dual', '-e', 'SERVICE_NAME=dual', '-p', '8081:80', TEST_IMAGE, ...httpd(80)]);
    const bindings = JSON.parse(await a.docker(['inspect', '-f', '{{json .NetworkSettings.Ports}}', 'dual'])) as Record<string, Array<{ HostIp: string }>>;
    const hostIps = bindings['80/tcp']!.map((b) => b.HostIp).sort();
    const [entry] = await catalog.waitForService('dual', 1);
    assert.deepEqual([entry!.ServiceID, entry!.ServiceAddress, entry!.ServicePort], ['a:dual:80', a.address, 8081]);
    // The precondition: Docker 20.10 binds both families for `-p 8081:80`.
    assert.deepEqual(hostIps, ['0.0.0.0', '::']);
  });

  it('registers a UDP port with tag udp and ID suffix :udp, found by an _udp SRV query', async () => {
    const a = host('a');
    await run(a, ['--name', 'dns1', '-e', 'SERVICE_NAME=resolver', '-p', '5353:53/udp', TEST_IMAGE, 'nc', '-u', '-l', '-p', '53']);
    const [entry] = await catalog.waitForService('resolver', 1);
    assert.deepEqual([entry!.ServiceID, entry!.ServiceTags, entry!.ServicePort], ['a:dns1:53:udp', ['udp'], 5353]);

    const srv = await dig(cluster().dnsPort, '_resolver._udp.service.consul', 'SRV');
    assert.equal(srv.status, 'NOERROR', srv.raw);
    assert.deepEqual(srv.answer.map((r) => r.data.split(' ').slice(0, 3)), [['1', '1', '5353']]);
    const target = srv.answer[0]!.data.split(' ')[3];
    assert.ok(srv.additional.some((r) => r.name === target && r.type === 'A' && r.data === a.address), srv.raw);
  });

  it('leaves out loopback bindings and advertises a binding to a specific host address', async () => {
    const a = host('a');
    // A second address on A, reachable from B over the testbed bridge.
    const extra = a.address.replace(/\.\d+$/, '.250');
    await a.exec('ip', ['addr', 'add', `${extra}/24`, 'dev', 'eth0']);
    await run(a, ['--name', 'bound', '-e', 'SERVICE_NAME=bound', '-p', '127.0.0.1:8090:80', '-p', `${extra}:8091:80`, TEST_IMAGE, ...httpd(80)]);
    await run(a, ['--name', 'local', '-e', 'SERVICE_NAME=local', '-p', '127.0.0.1:8092:80', TEST_IMAGE, ...httpd(80)]);

    const [entry] = await catalog.waitForService('bound', 1);
    assert.deepEqual([entry!.ServiceID, entry!.ServiceAddress, entry!.ServicePort], ['a:bound:80', extra, 8091]);
    const page = await host('b').http(`http://${extra}:8091/`);
    assert.equal(page.body, TEST_PAGE);
    // Both containers were listed by one sync of the same start burst; only loopback is left out.
    assert.deepEqual(await catalog.nodeServiceIds('a'), ['a:bound:80']);
    assert.deepEqual(await catalog.service('local'), []);
  });

  it('reads SERVICE_* from env and labels, labels winning, keys case-insensitive', async () => {
    await run(host('a'), ['--name', 'meta1', '-p', '8100:80',
      '-e', 'SERVICE_NAME=fromenv', '-l', 'SERVICE_NAME=fromlabel',
      '-e', 'SERVICE_TAGS=x,y\\,z', '-e', 'SERVICE_VERSION=1', '-l', 'SERVICE_Version=2', '-e', 'SERVICE_OWNER=team',
      TEST_IMAGE, ...httpd(80)]);
    const [entry] = await catalog.waitForService('fromlabel', 1);
    assert.deepEqual(entry!.ServiceTags, ['x', 'y,z']);
    assert.deepEqual(entry!.ServiceMeta, { owner: 'team', version: '2' });
    assert.deepEqual(await catalog.service('fromenv'), []);
  });

  it('lets SERVICE_<port>_* beat SERVICE_*, and SERVICE_<port>_NAME skips the port suffix', async () => {
    await run(host('a'), ['--name', 'pp', '-p', '8110:80', '-p', '8111:443',
      '-e', 'SERVICE_NAME=pp', '-e', 'SERVICE_TAGS=gen', '-e', 'SERVICE_ROLE=any',
      '-e', 'SERVICE_443_NAME=pp-secure', '-e', 'SERVICE_443_TAGS=tls', '-l', 'SERVICE_443_ROLE=edge', '-e', 'SERVICE_80_ID=pp-plain',
      TEST_IMAGE, 'sh', '-c', `httpd -p 443 -h /www && exec ${httpd(80).join(' ')}`]);
    const [plain] = await catalog.waitForService('pp-80', 1);
    const [secure] = await catalog.waitForService('pp-secure', 1);
    assert.deepEqual([plain!.ServiceID, plain!.ServiceTags, plain!.ServiceMeta, plain!.ServicePort], ['pp-plain', ['gen'], { role: 'any' }, 8110]);
    assert.deepEqual([secure!.ServiceID, secure!.ServiceTags, secure!.ServiceMeta, secure!.ServicePort], ['a:pp:443', ['tls'], { role: 'edge' }, 8111]);
  });

  it('skips containers and ports with SERVICE_IGNORE', async () => {
    const a = host('a');
    await run(a, ['--name', 'ign', '-e', 'SERVICE_IGNORE=true', '-p', '8120:80', TEST_IMAGE, ...httpd(80)]);
    await run(a, ['--name', 'half', '-e', 'SERVICE_NAME=half', '-e', 'SERVICE_443_IGNORE=1', '-p', '8121:80', '-p', '8122:443', TEST_IMAGE,
      'sh', '-c', `httpd -p 443 -h /www && exec ${httpd(80).join(' ')}`]);
    // Registrator counts ignored ports for the suffix: the name stays half-80.
    await catalog.waitForService('half-80', 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await catalog.nodeServiceIds('a'), ['a:half:80']);
  });

  it('names a service after its compose service, else after the image base name', async () => {
    const a = host('a');
    await run(a, ['--name', 'proj-api-1', '-l', 'com.docker.compose.project=proj', '-l', 'com.docker.compose.service=api_worker', '-p', '8130:80', TEST_IMAGE, ...httpd(80)]);
    await run(a, ['--name', 'plain', '-p', '8131:80', TEST_IMAGE, ...httpd(80)]);
    const [compose] = await catalog.waitForService('api-worker', 1);
    assert.equal(compose!.ServiceID, 'a:proj-api-1:80');
    const [image] = await catalog.waitForService('portolan-test', 1);
    assert.equal(image!.ServiceID, 'a:plain:80');
  });

  it('registers a host-network container at the host IP with the ports of SERVICE_PORTS', async () => {
    const b = host('b');
    await run(b, ['--name', 'hn', '--network', 'host', '-e', 'SERVICE_NAME=hn', '-e', 'SERVICE_PORTS=8140,5354/udp', TEST_IMAGE, ...httpd(8140)]);
    const [tcp] = await catalog.waitForService('hn-8140', 1);
    const [udp] = await catalog.waitForService('hn-5354', 1);
    assert.deepEqual([tcp!.ServiceID, tcp!.ServiceAddress, tcp!.ServicePort, tcp!.ServiceTags], ['b:hn:8140', b.address, 8140, []]);
    assert.deepEqual([udp!.ServiceID, udp!.ServiceAddress, udp!.ServicePort, udp!.ServiceTags], ['b:hn:5354:udp', b.address, 5354, ['udp']]);
    const page = await host('a').http(`http://${b.address}:8140/`);
    assert.equal(page.body, TEST_PAGE);
  });

  describe('agent modes (the agent on B restarted with other flags)', () => {
    it('--explicit registers only named ports; --tags adds tags to every service; --use-ip-from-label', async () => {
      await restartAgent('b', ['--explicit', '--tags', 'blue,canary', '--use-ip-from-label', 'svc.ip']);
      const b = host('b');
      await run(b, ['--name', 'anon', '-p', '8150:80', TEST_IMAGE, ...httpd(80)]);
      await run(b, ['--name', 'named', '-e', 'SERVICE_NAME=exp', '-e', 'SERVICE_TAGS=own', '-l', 'svc.ip=192.0.2.10/24', '-p', '8151:80', TEST_IMAGE, ...httpd(80)]);
      await run(b, ['--name', 'portnamed', '-e', 'SERVICE_443_NAME=exp-tls', '-p', '8152:80', '-p', '8153:443', TEST_IMAGE,
        'sh', '-c', `httpd -p 443 -h /www && exec ${httpd(80).join(' ')}`]);
      const [named] = await catalog.waitForService('exp', 1);
      const [tls] = await catalog.waitForService('exp-tls', 1);
      assert.deepEqual([named!.ServiceAddress, named!.ServiceTags], ['192.0.2.10', ['own', 'blue', 'canary']]);
      assert.deepEqual([tls!.ServiceID, tls!.ServiceAddress, tls!.ServicePort, tls!.ServiceTags], ['b:portnamed:443', b.address, 8153, ['blue', 'canary']]);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(await catalog.nodeServiceIds('b'), ['b:named:80', 'b:portnamed:443']);
    });

    it('--internal registers container IP and port, exposed-only ports too, and follows network connect', async () => {
      await restartAgent('b', ['--internal']);
      const b = host('b');
      await b.docker(['network', 'create', 'zz-net']);
      await b.docker(['network', 'create', 'aa-net']);
      await run(b, ['--name', 'in1', '--network', 'zz-net', '-e', 'SERVICE_NAME=in', '--expose', '8080', '-p', '8160:80', TEST_IMAGE, ...httpd(80)]);
      // SERVICE_NETWORK wins over the first network by name: in2 moves to zz-net when it joins it.
      await run(b, ['--name', 'in2', '--network', 'aa-net', '-e', 'SERVICE_NAME=pinned', '-e', 'SERVICE_NETWORK=zz-net', '--expose', '80', TEST_IMAGE, ...httpd(80)]);
      const [onAa] = await catalog.waitForService('pinned', 1);
      assert.equal(onAa!.ServiceAddress, await containerIp(b, 'in2', 'aa-net'));
      await b.docker(['network', 'connect', 'zz-net', 'in2']);
      const zz2 = await containerIp(b, 'in2', 'zz-net');
      await until(async () => ((await catalog.service('pinned'))[0]?.ServiceAddress === zz2 ? true : undefined), 10_000, 'pinned on zz-net');

      const zz1 = await containerIp(b, 'in1', 'zz-net');
      const [web] = await catalog.waitForService('in-80', 1);
      const [exposed] = await catalog.waitForService('in-8080', 1);
      assert.deepEqual([web!.ServiceID, web!.ServiceAddress, web!.ServicePort], ['b:in1:80', zz1, 80]);
      assert.deepEqual(web!.ServiceTaggedAddresses, {
        lan: { Address: zz1, Port: 80 },
        lan_ipv4: { Address: zz1, Port: 80 },
        wan: { Address: b.address, Port: 8160 },
        wan_ipv4: { Address: b.address, Port: 8160 },
        // Docker publishes -p 8160:80 on :: too, and the testbed host has an IPv6 address.
        wan_ipv6: { Address: b.address6, Port: 8160 },
      });
      assert.deepEqual([exposed!.ServiceAddress, exposed!.ServicePort], [zz1, 8080]);

      // Without SERVICE_NETWORK, connecting aa-net makes it the first network by name.
      await b.docker(['network', 'connect', 'aa-net', 'in1']);
      const aa1 = await containerIp(b, 'in1', 'aa-net');
      await until(async () => ((await catalog.service('in-80'))[0]?.ServiceAddress === aa1 ? true : undefined), 10_000, 'in-80 moved to aa-net');
      await b.docker(['network', 'disconnect', 'aa-net', 'in1']);
      await until(async () => ((await catalog.service('in-80'))[0]?.ServiceAddress === zz1 ? true : undefined), 10_000, 'in-80 back on zz-net');
    });
  });
});
