import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Docker from 'dockerode';
import { pino } from 'pino';
import { BridgeGatewayWatcher, type InterfaceAddresses } from '../../agent/local-dns/bridge-gateways.js';
import { testbedSkipReason, useTestbed, type Host } from '../testbed/index.js';
import { until } from '../support/until.js';

const skip = await testbedSkipReason();

/** The engine's bridges live in the host's namespace, not in the test's: read them there. */
function namespaceInterfaces(host: Host): () => Promise<InterfaceAddresses> {
  return async () => {
    const parsed = JSON.parse((await host.exec('ip', ['-j', 'addr'])).stdout) as { ifname: string; addr_info: { local: string }[] }[];
    return (name) => parsed.find((i) => i.ifname === name)?.addr_info.map((a) => a.local) ?? [];
  };
}

// Longer than an engine restart plus a network create: what is made meanwhile only a re-list can show.
const RECONNECT_MS = 8000;

describe('bridge gateway watcher against a real engine', { skip }, () => {
  const bed = useTestbed({ hosts: ['a'] });

  it('lists the default bridge gateway, follows a bridge network created and removed, and re-lists after an engine crash', async (t) => {
    const host = bed().host('a');
    const seen: string[][] = [];
    const watcher = new BridgeGatewayWatcher({
      docker: new Docker({ socketPath: host.socketPath }),
      logger: pino({ level: 'silent' }),
      onChange: (gateways) => seen.push(gateways),
      retryMinMs: RECONNECT_MS,
      retryMaxMs: RECONNECT_MS,
      interfaceAddresses: namespaceInterfaces(host),
    });
    watcher.start();
    t.after(() => watcher.stop());
    const bridge = await host.docker(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Gateway}}', 'bridge']);
    assert.match(bridge, /^172\.30\.\d+\.1$/, 'the default bridge lists its gateway in IPAM');
    await until(() => seen.length === 1, 15_000, 'first list');
    assert.deepEqual(seen[0], [bridge]);

    // No --gateway: Docker lists none in IPAM and puts the ip-range's first address on the bridge.
    await host.docker(['network', 'create', '--subnet', '172.31.250.0/24', '--ip-range', '172.31.250.128/25', 'ldns-e2e']);
    await until(() => seen.length === 2, 15_000, 'gateway of the new network');
    assert.deepEqual(seen[1], [bridge, '172.31.250.128']);
    await host.docker(['network', 'rm', 'ldns-e2e']);
    await until(() => seen.length === 3, 15_000, 'gateway gone with its network');
    assert.deepEqual(seen[2], [bridge]);

    // The stream cannot end before the kill, so the watcher cannot reconnect before crash + RECONNECT_MS.
    const crash = Date.now();
    await host.killEngine();
    await host.startEngine();
    await host.docker(['network', 'create', '--subnet', '172.31.251.0/24', '--gateway', '172.31.251.9', 'ldns-e2e2']);
    const madeAfter = Date.now() - crash;
    assert.ok(madeAfter < RECONNECT_MS - 1000, `network made ${madeAfter} ms after the crash, before the watcher reconnects`);
    assert.equal(seen.length, 3, 'nothing delivered while not subscribed');
    await until(() => seen.length === 4, RECONNECT_MS + 15_000, 're-list after reconnecting');
    assert.deepEqual(seen[3], [bridge, '172.31.251.9']);
    assert.ok(Date.now() - crash >= RECONNECT_MS, 'delivered by the re-list after the backoff, not by an event');
  });
});
