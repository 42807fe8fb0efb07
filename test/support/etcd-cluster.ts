import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, mkdir, writeFile, readFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

const ETCD = process.env.PORTOLAN_ETCD_BIN ?? '/usr/bin/etcd';
const ETCDCTL = process.env.PORTOLAN_ETCDCTL_BIN ?? '/usr/bin/etcdctl';

/** One member of a test cluster. */
interface Member {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  process?: ChildProcess;
  exited?: Promise<void>;
  log?: WriteStream;
}

export interface EtcdClusterOptions {
  /** Members (default 3). */
  members?: number;
  /** Extra flags for every member, e.g. ['--max-txn-ops', '128']. */
  extraArgs?: readonly string[];
  /** How long start() waits for a healthy cluster (default 20 s). */
  startTimeoutMs?: number;
  /**
   * Serve clients over TLS with a fresh CA (openssl), requiring client certificates: `tls`
   * then holds the PEM texts a client needs. Peers stay plain on loopback.
   */
  tls?: boolean;
}

/** PEM texts for a client of a TLS test cluster. */
export interface EtcdClusterTls {
  ca: string;
  cert: string;
  key: string;
}

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate, in `dir`. */
async function makeCerts(dir: string): Promise<{ files: Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey', string>; pem: EtcdClusterTls }> {
  const f = (name: string) => join(dir, name);
  const ssl = (args: string[]) => execFileP('openssl', args, { cwd: dir });
  await ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=portolan-test-ca', '-keyout', f('ca.key'), '-out', f('ca.pem')]);
  await writeFile(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  await writeFile(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    await ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=portolan-test-${who}`, '-keyout', f(`${who}.key`), '-out', f(`${who}.csr`)]);
    await ssl(['x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f(`${who}.ext`), '-out', f(`${who}.pem`)]);
  }
  const read = (name: string) => readFile(f(name), 'utf8');
  return {
    files: { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') },
    pem: { ca: await read('ca.pem'), cert: await read('client.pem'), key: await read('client.key') },
  };
}

/** Ports the kernel says are free now (bound and closed at once: good enough on loopback). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () =>
      new Promise<Server>((resolve, reject) => {
        const s = createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve(s));
      }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** JSON of etcdctl with its 64-bit IDs kept as decimal strings (JSON.parse would round them). */
function parseEtcdJson(text: string): unknown {
  return JSON.parse(text.replace(/"(member_id|leader|cluster_id|ID|id)":(\d+)/g, '"$1":"$2"'));
}

/**
 * A real etcd cluster (Debian etcd-server 3.4) on loopback, on free ports, with its data in a
 * temporary directory: `await EtcdCluster.start()`, then `endpoints` for clients; `kill(i)`
 * (SIGKILL), `start(i)`, `pause(i)`/`resume(i)` (SIGSTOP/SIGCONT, a member that is there and
 * does not answer), `leader()`, `compact(rev)`, `stop()`. Only the PIDs it spawned are signalled.
 * Each member's log is in `<dataDir>.log` (kept until stop()).
 */
export class EtcdCluster {
  readonly #members: Member[];
  readonly #root: string;
  readonly #extraArgs: readonly string[];
  readonly #token: string;
  #stopped = false;
  readonly #paused = new Set<number>();
  #certs: Awaited<ReturnType<typeof makeCerts>> | undefined;
  #auth: { user: string; password: string } | undefined;

  private constructor(root: string, members: Member[], extraArgs: readonly string[]) {
    this.#root = root;
    this.#members = members;
    this.#extraArgs = extraArgs;
    this.#token = `portolan-test-${process.pid}-${Date.now()}`;
  }

  /** Starts the members and resolves once every one reports healthy. */
  static async start(options: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    const count = options.members ?? 3;
    if (!Number.isInteger(count) || count < 1) throw new Error(`EtcdCluster: members must be a positive integer, got ${count}`);
    const root = await mkdtemp(join(tmpdir(), 'portolan-etcd-'));
    const ports = await freePorts(count * 2);
    const members: Member[] = [];
    for (let i = 0; i < count; i++) {
      const dataDir = join(root, `m${i}`);
      members.push({ name: `m${i}`, clientPort: ports[2 * i]!, peerPort: ports[2 * i + 1]!, dataDir });
    }
    const cluster = new EtcdCluster(root, members, options.extraArgs ?? []);
    try {
      if (options.tls) cluster.#certs = await makeCerts(root);
      for (let i = 0; i < count; i++) await cluster.#spawn(i, 'new');
      await cluster.waitHealthy(options.startTimeoutMs ?? 20_000);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Client URLs of all members, in member order (`http://127.0.0.1:PORT`, https:// with tls). */
  get endpoints(): string[] {
    return this.#members.map((m) => `${this.#scheme}://127.0.0.1:${m.clientPort}`);
  }

  get #scheme(): string {
    return this.#certs ? 'https' : 'http';
  }

  /** PEM texts for a client (tls clusters only). */
  get tls(): EtcdClusterTls | undefined {
    return this.#certs?.pem;
  }

  /**
   * Turns on etcd authentication: creates `root` with `password` (and the role root) and
   * enables auth; etcdctl() goes on as root.
   */
  async enableAuth(password: string): Promise<void> {
    await this.etcdctl(['user', 'add', `root:${password}`]);
    await this.etcdctl(['auth', 'enable']);
    this.#auth = { user: 'root', password };
  }

  /** Adds a user with read-write access to keys under `prefix` only. */
  async addUser(user: string, password: string, prefix: string): Promise<void> {
    await this.etcdctl(['user', 'add', `${user}:${password}`]);
    await this.etcdctl(['role', 'add', `${user}-role`]);
    await this.etcdctl(['role', 'grant-permission', `${user}-role`, '--prefix=true', 'readwrite', prefix]);
    await this.etcdctl(['user', 'grant-role', user, `${user}-role`]);
  }

  /** `HOST:PORT` of all members, for an `etcd://` URL. */
  get hostPorts(): string[] {
    return this.#members.map((m) => `127.0.0.1:${m.clientPort}`);
  }

  /** `etcd://127.0.0.1:P1,127.0.0.1:P2,…` */
  get url(): string {
    return `etcd://${this.hostPorts.join(',')}`;
  }

  get size(): number {
    return this.#members.length;
  }

  /** The PID of a running member (undefined once killed). */
  pid(member: number): number | undefined {
    return this.#member(member).process?.pid;
  }

  isRunning(member: number): boolean {
    return this.#member(member).process !== undefined;
  }

  #member(i: number): Member {
    const m = this.#members[i];
    if (!m) throw new Error(`EtcdCluster: no member ${i} (members 0..${this.#members.length - 1})`);
    return m;
  }

  async #spawn(i: number, state: 'new' | 'existing'): Promise<void> {
    const m = this.#member(i);
    if (m.process) throw new Error(`EtcdCluster: member ${i} is already running (pid ${m.process.pid})`);
    await mkdir(m.dataDir, { recursive: true, mode: 0o700 });
    const initialCluster = this.#members.map((x) => `${x.name}=http://127.0.0.1:${x.peerPort}`).join(',');
    const args = [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', `${this.#scheme}://127.0.0.1:${m.clientPort}`,
      '--advertise-client-urls', `${this.#scheme}://127.0.0.1:${m.clientPort}`,
      ...(this.#certs
        ? ['--cert-file', this.#certs.files.serverCert, '--key-file', this.#certs.files.serverKey, '--trusted-ca-file', this.#certs.files.ca, '--client-cert-auth']
        : []),
      '--listen-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${m.peerPort}`,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', state,
      '--initial-cluster-token', this.#token,
      '--logger', 'zap',
      '--log-level', 'warn',
      ...this.#extraArgs,
    ];
    const log = createWriteStream(`${m.dataDir}.log`, { flags: 'a' });
    const child = spawn(ETCD, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    m.process = child;
    m.log = log;
    m.exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        if (m.process === child) m.process = undefined;
        resolve();
      });
      child.once('error', () => {
        if (m.process === child) m.process = undefined;
        resolve();
      });
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => reject(new Error(`EtcdCluster: cannot run ${ETCD}: ${err.message}`)));
    });
  }

  /** Resolves once every running member answers /health with true. */
  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const running = this.#answering();
      const states = await Promise.all(running.map((i) => this.#health(i)));
      if (running.length > 0 && states.every((s) => s === 'true')) return;
      last = running.map((i, k) => `m${i}: ${states[k]}`).join(', ') || 'no member running';
      if (Date.now() > end) throw new Error(`EtcdCluster: not healthy within ${timeoutMs} ms (${last})`);
      await sleep(100);
    }
  }

  async #health(i: number): Promise<string> {
    const url = `${this.#scheme}://127.0.0.1:${this.#member(i).clientPort}/health`;
    try {
      if (this.#certs) {
        const { ca, cert, key } = this.#certs.pem;
        const text = await new Promise<string>((resolve, reject) => {
          const req = httpsGet(url, { ca, cert, key, servername: 'localhost', timeout: 1000 }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (body += c));
            res.on('end', () => resolve(body));
            res.on('error', reject);
          });
          req.on('timeout', () => req.destroy(new Error('timeout')));
          req.on('error', reject);
        });
        return String((JSON.parse(text) as { health?: string }).health);
      }
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { health?: string };
      return String(body.health);
    } catch (err) {
      return `unreachable (${(err as Error).message})`;
    }
  }

  /** Runs etcdctl against the running members (or the given endpoints) and returns stdout. */
  async etcdctl(args: readonly string[], endpoints?: readonly string[]): Promise<string> {
    const eps = endpoints ?? this.#answering().map((i) => `127.0.0.1:${this.#member(i).clientPort}`);
    const tlsArgs = this.#certs ? [`--cacert=${this.#certs.files.ca}`, `--cert=${this.#certs.files.clientCert}`, `--key=${this.#certs.files.clientKey}`] : [];
    const authArgs = this.#auth ? [`--user=${this.#auth.user}:${this.#auth.password}`] : [];
    const scheme = this.#certs ? 'https://' : '';
    const { stdout } = await execFileP(ETCDCTL, [`--endpoints=${eps.map((e) => (e.includes('://') ? e : scheme + e)).join(',')}`, '--command-timeout=3s', ...tlsArgs, ...authArgs, ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  }

  /** Members running and not paused. */
  #answering(): number[] {
    return this.#members.map((_, i) => i).filter((i) => this.isRunning(i) && !this.#paused.has(i));
  }

  /** The index of the member that is leader now (asks every running, unpaused member; throws if none knows). */
  async leader(): Promise<number> {
    const running = this.#answering();
    const statuses = await Promise.all(
      running.map(async (i) => {
        try {
          const out = await this.etcdctl(['endpoint', 'status', '-w', 'json'], [`127.0.0.1:${this.#member(i).clientPort}`]);
          const [entry] = parseEtcdJson(out) as { Status: { header: { member_id: string }; leader: string } }[];
          return entry ? { i, id: entry.Status.header.member_id, leader: entry.Status.leader } : undefined;
        } catch {
          return undefined;
        }
      }),
    );
    const known = statuses.filter((s) => s !== undefined);
    for (const s of known) {
      if (s.leader === '0') continue;
      const l = known.find((x) => x.id === s.leader);
      if (l) return l.i;
    }
    throw new Error(`EtcdCluster: no leader known to the running members (${running.map((i) => `m${i}`).join(', ') || 'none'})`);
  }

  /** Waits until some running member is leader and returns it. */
  async waitLeader(timeoutMs = 10_000): Promise<number> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await this.leader();
      } catch (err) {
        if (Date.now() > end) throw err;
        await sleep(100);
      }
    }
  }

  /** The cluster's current revision (asked of the members that answer). */
  async revision(): Promise<number> {
    const out = await this.etcdctl(['endpoint', 'status', '-w', 'json']);
    const entries = JSON.parse(out) as { Status: { header: { revision: number } } }[];
    return Math.max(...entries.map((e) => e.Status.header.revision));
  }

  /** Compacts the keyspace's history up to `revision` (physically: the space is reclaimed). */
  async compact(revision: number): Promise<void> {
    await this.etcdctl(['compact', String(revision), '--physical']);
  }

  /** SIGKILLs a member and resolves once it has exited. */
  async kill(member: number): Promise<void> {
    const m = this.#member(member);
    const child = m.process;
    if (!child) return;
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    this.#paused.delete(member);
    await m.exited;
  }

  /** SIGSTOPs a member: its sockets stay open, it answers nothing (a hung or cut member). */
  pause(member: number): void {
    const child = this.#member(member).process;
    if (!child) throw new Error(`EtcdCluster: member ${member} is not running`);
    child.kill('SIGSTOP');
    this.#paused.add(member);
  }

  /** SIGCONTs a paused member. */
  resume(member: number): void {
    this.#member(member).process?.kill('SIGCONT');
    this.#paused.delete(member);
  }

  /**
   * Starts a killed member again with its data directory; resolves once its client port
   * accepts connections (it may not be healthy yet: with the others down there is no quorum).
   */
  async start(member: number): Promise<void> {
    await this.#spawn(member, 'existing');
    const port = this.#member(member).clientPort;
    const end = Date.now() + 15_000;
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = new Socket();
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => { s.destroy(); resolve(false); });
        s.connect(port, '127.0.0.1');
      });
      if (ok) return;
      if (!this.isRunning(member)) throw new Error(`EtcdCluster: member ${member} exited on start (see ${this.#member(member).dataDir}.log)`);
      if (Date.now() > end) throw new Error(`EtcdCluster: member ${member} does not listen on ${port} within 15 s`);
      await sleep(50);
    }
  }

  /** Kills every member it started and removes the data directories. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await Promise.all(this.#members.map((_, i) => this.kill(i)));
    for (const m of this.#members) m.log?.end();
    await rm(this.#root, { recursive: true, force: true });
  }
}
