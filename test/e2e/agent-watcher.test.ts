import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Docker from 'dockerode';
import { pino } from 'pino';
import { DockerWatcher } from '../../agent/docker-watcher.js';
import type { ContainerUpdate } from '../../agent/lifecycle.js';
import { TEST_IMAGE, testbedSkipReason, useTestbed } from '../testbed/index.js';
import { until } from '../support/until.js';

const skip = await testbedSkipReason();

describe('docker watcher against a real engine', { skip }, () => {
  const bed = useTestbed({ hosts: ['a'] });

  it('follows start/rename/pause/stop, and recovers from an engine crash with a re-list', async (t) => {
    const host = bed().host('a');
    const updates: ContainerUpdate[] = [];
    const tracked = new Set<string>();
    let syncs = 0;
    const watcher = new DockerWatcher({
      docker: new Docker({ socketPath: host.socketPath }),
      endpoint: host.dockerHost,
      logger: pino({ level: 'silent' }),
      resyncSeconds: 0,
      tracked: () => tracked,
      onUpdate: (u) => {
        updates.push(u);
        if (u.inspect?.State.Running) tracked.add(u.id);
        else tracked.delete(u.id);
      },
      onSynced: () => syncs++,
      retryMinMs: 50,
      retryMaxMs: 500,
    });
    // Already running before the watcher starts: found by the first list.
    const early = await host.docker(['run', '-d', '--name', 'early', TEST_IMAGE, 'sleep', '3600']);
    watcher.start();
    t.after(() => watcher.stop());
    await until(() => syncs === 1, 15_000, 'first sync');
    assert.ok(updates.some((u) => u.id === early && u.cause === 'sync' && u.inspect?.State.Running));

    const id = await host.docker(['run', '-d', '--name', 'w1', '-p', '7680:80', TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    await until(() => updates.some((u) => u.id === id && u.cause === 'start'), 15_000, 'start');
    await host.docker(['rename', 'w1', 'w2']);
    await until(() => updates.some((u) => u.id === id && u.cause === 'rename' && u.inspect?.Name === '/w2'), 15_000, 'rename');
    await host.docker(['pause', 'w2']);
    await until(() => updates.some((u) => u.id === id && u.cause === 'pause' && u.inspect?.State.Paused), 15_000, 'pause');
    await host.docker(['unpause', 'w2']);
    await host.docker(['network', 'create', 'n2']);
    await host.docker(['network', 'connect', 'n2', 'w2']);
    await until(() => updates.some((u) => u.id === id && u.cause === 'connect' && u.inspect?.NetworkSettings.Networks.n2 !== undefined), 15_000, 'connect');
    await host.docker(['stop', 'w2']);
    await until(() => updates.some((u) => u.id === id && u.cause === 'stop'), 15_000, 'stop');
    const causes = updates.filter((u) => u.id === id).map((u) => u.cause);
    assert.deepEqual(causes.slice(causes.indexOf('unpause')), ['unpause', 'connect', 'kill', 'die', 'disconnect', 'disconnect', 'stop']);
    assert.equal(updates.find((u) => u.id === id && u.cause === 'kill')?.signal, '15');

    // Engine crash: the stream errors, the watcher retries, re-lists when the engine is back.
    const survivor = await host.docker(['run', '-d', '--restart', 'always', '--name', 'survivor', TEST_IMAGE, 'sleep', '3600']);
    await until(() => tracked.has(survivor), 15_000, 'survivor start');
    const before = syncs;
    await host.killEngine();
    await host.startEngine();
    await until(() => syncs > before, 15_000, 're-list after the engine restart');
    const seen = () => `survivor running again; tracked: ${[...tracked].join()}; last updates: ${updates.slice(-8).map((u) => `${u.inspect?.Name ?? u.id.slice(0, 12)} ${u.cause} running=${u.inspect?.State.Running}`).join(', ')}`;
    await until(() => tracked.size === 1 && tracked.has(survivor), 20_000, seen);
    assert.ok(!tracked.has(early), 'the container the restart stopped is no longer tracked');
  });
});
