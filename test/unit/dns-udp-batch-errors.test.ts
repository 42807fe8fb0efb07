import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Packet } from 'dns2';
import type { BatchSocket, BatchSocketAddon } from '../../shared/dns/udp-batch.js';
import { startTestDns } from '../fixtures/dns/harness.js';
import { buildQuery, udpQuery } from '../fixtures/dns/raw.js';
import { until } from '../support/until.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const addon = createRequire(import.meta.url)(join(root, 'build/Release/udp_batch.node')) as BatchSocketAddon;
const { BatchSocket, BATCH, SLOT } = addon;
const arena = Buffer.allocUnsafeSlow(BATCH * SLOT);
const lengths = new Int32Array(BATCH);
const ignore = (): void => undefined;
const openFds = (): number => readdirSync('/proc/self/fd').length;

/** A UDP socket holding a loopback port, and the error Node's own dgram gives for binding it again. */
async function takenUdpPort(): Promise<{ holder: Socket; port: number; nodeError: NodeJS.ErrnoException }> {
  const holder = createSocket('udp4');
  await new Promise<void>((resolve) => holder.bind(0, '127.0.0.1', resolve));
  const port = holder.address().port;
  const second = createSocket('udp4');
  const failed = once(second, 'error');
  second.bind(port, '127.0.0.1');
  const [nodeError] = (await failed) as [NodeJS.ErrnoException];
  second.close();
  return { holder, port, nodeError };
}

const systemError = (err: unknown) => {
  const e = err as NodeJS.ErrnoException;
  return { message: e.message, code: e.code, errno: e.errno, syscall: e.syscall };
};

describe('bind errors say what Node would say', () => {
  test('the addon on a taken port throws EADDRINUSE with the message, errno and syscall of Node\'s dgram', async () => {
    const { holder, port, nodeError } = await takenUdpPort();
    try {
      assert.equal(nodeError.code, 'EADDRINUSE');
      assert.throws(() => new BatchSocket(4, '127.0.0.1', port, arena, lengths, ignore, ignore), (err) => {
        assert.deepEqual(systemError(err), systemError(nodeError));
        assert.equal((err as Error).message, `bind EADDRINUSE 127.0.0.1:${port}`);
        return true;
      });
    } finally {
      holder.close();
    }
  });

  test('startDnsServer on a taken UDP port rejects with EADDRINUSE and leaves no fd open', async () => {
    const { holder, port } = await takenUdpPort();
    try {
      const before = openFds();
      await assert.rejects(startTestDns({ port, udp: 'batch' }), { code: 'EADDRINUSE', syscall: 'bind', errno: -98 });
      assert.equal(openFds(), before);
    } finally {
      holder.close();
    }
  });

  test('startDnsServer on a taken TCP port rejects with EADDRINUSE and closes the batched UDP socket it had bound', async () => {
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as { port: number }).port;
    try {
      const before = openFds();
      await assert.rejects(startTestDns({ port, udp: 'batch' }), { code: 'EADDRINUSE', syscall: 'listen' });
      assert.equal(openFds(), before);
    } finally {
      holder.close();
    }
  });
});

describe('the socket\'s fd is closed on every path', () => {
  test('close() closes the fd before it returns, so the port is free again at once', async () => {
    const before = openFds();
    const socket = new BatchSocket(4, '127.0.0.1', 0, arena, lengths, ignore, ignore);
    const port = socket.port();
    assert.equal(openFds(), before + 1);
    socket.close();
    assert.equal(openFds(), before);
    const again = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.bind(port, '127.0.0.1', resolve);
    }).finally(() => again.close());
  });

  test('a failure after bind (napi_wrap refuses an object that already is a socket) closes the new socket', () => {
    const first = new BatchSocket(4, '127.0.0.1', 0, arena, lengths, ignore, ignore);
    try {
      const before = openFds();
      const construct = BatchSocket as unknown as (this: BatchSocket, ...args: unknown[]) => void;
      assert.throws(() => construct.call(first, 4, '127.0.0.1', 0, arena, lengths, ignore, ignore), /N-API call failed: napi_wrap/);
      assert.equal(openFds(), before);
      assert.ok(first.port() > 0, 'the first socket is untouched');
    } finally {
      first.close();
    }
  });

  const badArguments: Array<[string, unknown[], object]> = [
    ['a port past 65535 (once silently bound modulo 65536)', [4, '127.0.0.1', 70_000, arena, lengths, ignore, ignore], { name: 'RangeError', code: 'ERR_SOCKET_BAD_PORT' }],
    ['a family other than 4 or 6', [5, '127.0.0.1', 0, arena, lengths, ignore, ignore], { name: 'RangeError' }],
    ['no onError callback', [4, '127.0.0.1', 0, arena, lengths, ignore], { name: 'TypeError' }],
    ['an address that is no IP literal', [4, 'localhost', 0, arena, lengths, ignore, ignore], { code: 'EINVAL', syscall: 'inet_pton', message: 'inet_pton EINVAL localhost' }],
    ['an IPv4 address for family 6', [6, '127.0.0.1', 0, arena, lengths, ignore, ignore], { code: 'EINVAL' }],
    ['an arena smaller than BATCH * SLOT', [4, '127.0.0.1', 0, Buffer.alloc(SLOT), lengths, ignore, ignore], { name: 'RangeError' }],
  ];
  for (const [what, args, expected] of badArguments) {
    test(`${what} is refused before a socket exists: ${JSON.stringify(expected)}, no fd opened`, () => {
      const before = openFds();
      const Ctor = BatchSocket as unknown as new (...a: unknown[]) => BatchSocket;
      // A socket made anyway is closed, or it would keep this test process alive.
      assert.throws(() => new Ctor(...args).close(), expected);
      assert.equal(openFds(), before);
    });
  }
});

/**
 * Faults the kernel cannot be made to produce on demand, injected at the libc boundary of a
 * real aggregator DNS server in a child process: while the file UDP_FAULT starts with `r`,
 * recvmmsg fails with ENOMEM; with `s`, sendmmsg takes nothing and returns 0 with a stale
 * EINTR in errno (what made the old send loop spin forever). Each faulted call appends a byte
 * to UDP_FAULT.calls, so the test counts attempts instead of timing them.
 */
const SHIM = String.raw`
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int faulted(char mode) {
  const char *path = getenv("UDP_FAULT");
  char c = 0, calls[4096];
  int fd = path ? open(path, O_RDONLY) : -1;
  if (fd < 0) return 0;
  ssize_t n = read(fd, &c, 1);
  close(fd);
  if (n != 1 || c != mode) return 0;
  snprintf(calls, sizeof calls, "%s.calls", path);
  fd = open(calls, O_WRONLY | O_APPEND | O_CREAT, 0600);
  if (fd >= 0 && write(fd, &mode, 1) == 1) close(fd);
  return 1;
}

int recvmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags, struct timespec *t) {
  if (faulted('r')) { errno = ENOMEM; return -1; }
  int (*real)(int, struct mmsghdr *, unsigned int, int, struct timespec *) = dlsym(RTLD_NEXT, "recvmmsg");
  return real(fd, v, n, flags, t);
}

int sendmmsg(int fd, struct mmsghdr *v, unsigned int n, int flags) {
  if (faulted('s')) { errno = EINTR; return 0; }
  int (*real)(int, struct mmsghdr *, unsigned int, int) = dlsym(RTLD_NEXT, "sendmmsg");
  return real(fd, v, n, flags);
}
`;

/** The real DNS server (batched UDP, `web` registered), logging pino JSON to stdout. */
const CHILD = `
import { pino } from 'pino';
import { startTestDns } from './test/fixtures/dns/harness.ts';
import { instance, nodeReg } from './test/support/services.ts';
const dns = await startTestDns({ logger: pino(), udp: 'batch' });
await dns.store.replaceNode(nodeReg('h1', '192.0.2.1'), [instance({ id: 'w', name: 'web', address: '192.0.2.1' })]);
console.log(JSON.stringify({ port: dns.port }));
`;

describe('receive and send faults (LD_PRELOAD shim around recvmmsg/sendmmsg)', () => {
  let dir: string;
  let fault: string;
  let child: ChildProcess;
  let port: number;
  const logs: Array<{ msg?: string; err?: NodeJS.ErrnoException; port?: number }> = [];
  const faultedCalls = (): number => {
    try {
      return statSync(`${fault}.calls`).size;
    } catch {
      return 0;
    }
  };
  const setFault = (mode: '' | 'r' | 's'): void => {
    writeFileSync(fault, mode);
    rmSync(`${fault}.calls`, { force: true });
  };
  const ask = async (id: number): Promise<Packet | undefined> => {
    const reply = await udpQuery(port, buildQuery('web.service.consul', Packet.TYPE.A, { id }), 5000);
    return reply && Packet.parse(reply);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portolan-udp-fault-'));
    fault = join(dir, 'fault');
    setFault('');
    writeFileSync(join(dir, 'shim.c'), SHIM);
    await promisify(execFile)(process.env.CC ?? 'cc', ['-shared', '-fPIC', '-O1', '-o', join(dir, 'shim.so'), join(dir, 'shim.c'), '-ldl']);
    child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], {
      cwd: root,
      env: { ...process.env, LD_PRELOAD: join(dir, 'shim.so'), UDP_FAULT: fault },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      const lines = (buffered + chunk.toString()).split('\n');
      buffered = lines.pop()!;
      for (const line of lines) logs.push(JSON.parse(line) as (typeof logs)[number]);
    });
    port = (await until(() => logs.find((l) => 'port' in l), 20_000, 'the child server listening')).port as number;
  });

  after(async () => {
    child.kill();
    await once(child, 'exit');
    rmSync(dir, { recursive: true, force: true });
  });

  test('a recvmmsg error that persists is logged once (ENOMEM, errno -12), retried with back-off, not in a busy loop; answers resume when it clears', async () => {
    setFault('r');
    const answer = ask(1);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const calls = faultedCalls();
    // Back-off from 100 ms doubling: 4 attempts in the first second; a busy loop makes thousands.
    assert.ok(calls >= 2 && calls <= 8, `${calls} receive attempts in 1 s`);
    const failures = logs.filter((l) => l.msg?.startsWith('dns: udp receive failed'));
    assert.equal(failures.length, 1, 'logged once, not once per attempt');
    assert.deepEqual(
      { code: failures[0]!.err?.code, errno: failures[0]!.err?.errno, syscall: failures[0]!.err?.syscall },
      { code: 'ENOMEM', errno: -12, syscall: 'recvmmsg' },
    );
    setFault('');
    const packet = await answer;
    assert.ok(packet, 'the query queued during the fault is answered once receiving works again');
    assert.equal(packet.header.id, 1);
    assert.deepEqual(packet.answers.map((a) => a.address), ['192.0.2.1']);
    // The log line comes over the child's stdout, which may trail the answer on the socket.
    await until(() => logs.some((l) => l.msg === 'dns: udp receiving again'), 2000, 'a "dns: udp receiving again" log line');
  });

  test('sendmmsg taking nothing (returns 0) costs one attempt per reply and the server goes on answering', async () => {
    setFault('s');
    assert.equal(await udpQuery(port, buildQuery('web.service.consul', Packet.TYPE.A, { id: 2 }), 500), undefined, 'the reply the kernel did not take is dropped');
    assert.equal(faultedCalls(), 1, 'one sendmmsg for the one reply, not a loop');
    setFault('');
    const packet = await ask(3);
    assert.equal(packet?.header.id, 3);
    assert.deepEqual(packet.answers.map((a) => a.address), ['192.0.2.1']);
  });
});
