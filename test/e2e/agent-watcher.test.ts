import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Docker from 'dockerode';
import { pino } from 'pino';
import { DockerWatcher } from '../../agent/docker-watcher.js';
import type { ContainerUpdate } from '../../agent/lifecycle.js';
import { TEST_IMAGE, testbedSkipReason, useTestbed } from '../testbed/index.js';

const skip = await testbedSkipReason();

async function until(what: string | (() => string), cond: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

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
    await until('first sync', () => syncs === 1);
    assert.ok(updates.some((u) => u.id === early && u.cause === 'sync' && u.inspect?.State.Running));

    const id = await host.docker(['run', '-d', '--name', 'w1', '-p', '7680:80', TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
    await until('start', () => updates.some((u) => u.id === id && u.cause === 'start'));
    await host.docker(['rename', 'w1', 'w2']);
    await until('rename', () => updates.some((u) => u.id === id && u.cause === 'rename' && u.inspect?.Name === '/w2'));
    await host.docker(['pause', 'w2']);
    await until('pause', () => updates.some((u) => u.id === id && u.cause === 'pause' && u.inspect?.State.Paused));
    await host.docker(['unpause', 'w2']);
    await host.docker(['network', 'create', 'n2']);
    await host.docker(['network', 'connect', 'n2', 'w2']);
    await until('connect', () => updates.some((u) => u.id === id && u.cause === 'connect' && u.inspect?.NetworkSettings.Networks.n2 !== undefined));
    await host.docker(['stop', 'w2']);
    await until('stop', () => updates.some((u) => u.id === id && u.cause === 'stop'));
    const causes = updates.filter((u) => u.id === id).map((u) => u.cause);
    assert.deepEqual(causes.slice(causes.indexOf('unpause')), ['unpause', 'connect', 'kill', 'die', 'disconnect', 'disconnect', 'stop']);
    assert.equal(updates.find((u) => u.id === id && u.cause === 'kill')?.signal, '15');

    // Engine crash: the stream errors, the watcher retries, re-lists when the engine is back.
    const survivor = await host.docker(['run', '-d', '--restart', 'always', '--name', 'survivor', TEST_IMAGE, 'sleep', '3600']);
    await until('survivor start', () => tracked.has(survivor));
    const before = syncs;
    await host.killEngine();
    await host.startEngine();
    await until('re-list after the engine restart', () => syncs > before);
    const seen = () => `survivor running again; tracked: ${[...tracked].join()}; last updates: ${updates.slice(-8).map((u) => `${u.inspect?.Name ?? u.id.slice(0, 12)} ${u.cause} running=${u.inspect?.State.Running}`).join(', ')}`;
    await until(seen, () => tracked.size === 1 && tracked.has(survivor), 20_000);
    assert.ok(!tracked.has(early), 'the container the restart stopped is no longer tracked');
  });
});
