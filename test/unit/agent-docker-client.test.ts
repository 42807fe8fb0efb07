import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadDockerode } from '../../agent/docker-client.js';

const require = createRequire(import.meta.url);
const loaded = (pkg: string): boolean => Object.keys(require.cache).some((file) => file.includes(`/node_modules/${pkg}/`));

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// One test: the order matters (nothing heavy loaded, then each part loaded by its first use).
test('dockerode loads without ssh2 and grpc, which load when an ssh:// engine or a BuildKit build needs them', async () => {
  const Docker = await loadDockerode();
  assert.ok(loaded('dockerode') && loaded('docker-modem'));
  for (const pkg of ['ssh2', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs']) assert.equal(loaded(pkg), false, `${pkg} loaded`);

  const viaSsh = new Docker({ protocol: 'ssh', host: '127.0.0.1', port: await closedPort(), username: 'nobody' });
  await assert.rejects(viaSsh.version(), /ECONNREFUSED/);
  assert.equal(loaded('ssh2'), true);

  const socketPath = join(await mkdtemp(join(tmpdir(), 'portolan-docker-client-')), 'absent.sock');
  const absent = new Docker({ socketPath });
  await assert.rejects(absent.buildImage({ context: tmpdir(), src: [] }, { version: '2' }), /ENOENT/);
  assert.equal(loaded('@grpc/grpc-js'), true);
});
