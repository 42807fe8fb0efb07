import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiError, columns } from '../../cli/api-client.js';
import { httpApi, httpApiFlags } from '../../cli/catalog-commands.js';
import { parseFlags, UsageError } from '../../cli/flags.js';
import { TestPki } from '../support/test-pki.js';

const flags = (argv: string[], env: NodeJS.ProcessEnv = {}) => parseFlags(httpApiFlags, argv, env).values;

/** A real HTTP (or, given a certificate, HTTPS) server answering every request with its path and X-Consul-Token. */
async function echoServer(status = 200, tls?: { cert: string; key: string }) {
  const answer = (req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ path: req.url, token: req.headers['x-consul-token'] ?? null }));
  };
  const server = tls ? https.createServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, answer) : http.createServer(answer);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(r)) };
}

test('CONSUL_HTTP_ADDR as Consul takes it: a bare HOST:PORT is http://; CONSUL_HTTP_TOKEN goes out as X-Consul-Token', async () => {
  const server = await echoServer();
  try {
    const api = httpApi(flags([], { CONSUL_HTTP_ADDR: `127.0.0.1:${server.port}`, CONSUL_HTTP_TOKEN: 'env-token' }));
    assert.deepEqual(await api.json('/v1/catalog/nodes?node-meta=a:b'), { path: '/v1/catalog/nodes?node-meta=a:b', token: 'env-token' });
    const flagged = httpApi(flags(['--http-addr', `http://127.0.0.1:${server.port}`]));
    assert.deepEqual(await flagged.json('/v1/agent/self'), { path: '/v1/agent/self', token: null });
  } finally {
    await server.close();
  }
});

test('--token-file is read (trimmed); --token beats it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'portolan-token-'));
  const server = await echoServer();
  try {
    writeFileSync(join(dir, 'token'), 'from-file\n');
    const addr = `127.0.0.1:${server.port}`;
    assert.equal((await httpApi(flags(['--http-addr', addr, '--token-file', join(dir, 'token')])).json<{ token: string }>('/')).token, 'from-file');
    assert.equal((await httpApi(flags(['--http-addr', addr, '--token-file', join(dir, 'token'), '--token', 'flag'])).json<{ token: string }>('/')).token, 'flag');
    assert.throws(() => httpApi(flags(['--token-file', join(dir, 'missing')])), (e) => e instanceof UsageError && /--token-file: cannot read/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await server.close();
  }
});

test('an error status or an unreachable API is an ApiError naming it; a non-HTTP address is a usage error', async () => {
  const server = await echoServer(403);
  await assert.rejects(httpApi(flags(['--http-addr', `127.0.0.1:${server.port}`])).json('/v1/catalog/nodes'), (e) => e instanceof ApiError && e.message.startsWith(`http://127.0.0.1:${server.port}/v1/catalog/nodes: 403 `));
  await server.close();
  // A port just freed that no connection was ever made to (the one above may have a kept-alive socket).
  const unused = await echoServer();
  await unused.close();
  await assert.rejects(httpApi(flags(['--http-addr', `127.0.0.1:${unused.port}`])).json('/'), (e) => e instanceof ApiError && e.message === `cannot reach http://127.0.0.1:${unused.port} (ECONNREFUSED)`);
  assert.throws(() => httpApi(flags(['--http-addr', 'unix:///run/consul.sock'])), /--http-addr must be an http:\/\/ or https:\/\/ address/);
});

test('an https:// address is verified against --ca-file (CONSUL_CACERT); without it a private CA is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'portolan-cli-tls-'));
  const pki = new TestPki(dir);
  const server = await echoServer(200, pki.issue('api', { ip: ['127.0.0.1'] }));
  try {
    const addr = `https://127.0.0.1:${server.port}`;
    const api = httpApi(flags(['--http-addr', addr, '--token', 't'], { CONSUL_CACERT: pki.ca }));
    assert.deepEqual(await api.json('/v1/catalog/services'), { path: '/v1/catalog/services', token: 't' });
    await assert.rejects(httpApi(flags(['--http-addr', addr])).json('/'), (e) => e instanceof ApiError && /cannot reach https:\/\/127\.0\.0\.1:\d+ \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\)/.test(e.message));
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('columns: each cell but the last padded to its column, two spaces between (as Consul\'s columnize)', () => {
  assert.equal(columns([['Node', 'Address', 'Status'], ['a-long-name', '10.0.0.1', 'alive'], ['b', '10.0.0.22', 'failed']]), 'Node         Address    Status\na-long-name  10.0.0.1   alive\nb            10.0.0.22  failed\n');
});
