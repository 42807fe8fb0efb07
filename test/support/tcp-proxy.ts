import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface TcpProxyOptions {
  /** Where the proxy forwards to. */
  targetHost: string;
  targetPort: number;
  /** Address the proxy listens on (default 127.0.0.1); its port is chosen by the kernel, then kept. */
  listenHost?: string;
}

/**
 * A TCP forwarder on loopback that can be cut: `cut()` destroys every connection through it and
 * refuses new ones (the listening socket is closed, so a connect gets ECONNREFUSED), `heal()`
 * listens again on the same port. What goes through is not looked at; each accepted connection
 * gets its own upstream connection, and either side closing or failing closes the other.
 * Used to cut one client (an aggregator) from a server (an etcd member) without touching either.
 *
 * Otherwise it stays out of the way: while the target refuses connections (a killed member) the
 * proxy refuses too (its listener is closed until a probe every 50 ms finds the target back), so
 * the client sees what it would see without the proxy, not connections that open and then drop.
 */
export class TcpProxy {
  readonly #o: Required<TcpProxyOptions>;
  readonly #pairs = new Set<[Socket, Socket]>();
  #server: Server | undefined;
  #port = 0;
  #cut = false;
  #stopped = false;
  /** Set while the target refuses: the listener is closed and this probes for its return. */
  #probe: NodeJS.Timeout | undefined;
  /** Connections accepted so far (each one forwarded), and connections destroyed by cut(). */
  readonly stats = { accepted: 0, severed: 0 };

  private constructor(o: TcpProxyOptions) {
    this.#o = { listenHost: '127.0.0.1', ...o };
  }

  static async start(o: TcpProxyOptions): Promise<TcpProxy> {
    if (!Number.isInteger(o.targetPort) || o.targetPort <= 0 || o.targetPort > 65535) {
      throw new Error(`TcpProxy: targetPort must be a TCP port, got ${o.targetPort}`);
    }
    const proxy = new TcpProxy(o);
    await proxy.#listen();
    return proxy;
  }

  /** The port the proxy listens on (the same across cut() and heal()). */
  get port(): number {
    return this.#port;
  }

  /** `HOST:PORT` of the proxy, for a client's endpoint list. */
  get hostPort(): string {
    return `${this.#o.listenHost}:${this.#port}`;
  }

  get isCut(): boolean {
    return this.#cut;
  }

  /** Connections forwarded right now. */
  get open(): number {
    return this.#pairs.size;
  }

  /** True while the proxy refuses because its target does (not because of cut()). */
  get targetDown(): boolean {
    return this.#probe !== undefined;
  }

  #listen(): Promise<void> {
    const server = createServer({ noDelay: true }, (client) => this.#accept(client));
    return new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, this.#o.listenHost, () => {
        server.off('error', reject);
        this.#server = server;
        this.#port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  #accept(client: Socket): void {
    if (this.#cut || this.#stopped) {
      client.destroy();
      return;
    }
    this.stats.accepted++;
    client.pause();
    const upstream = createConnection({ host: this.#o.targetHost, port: this.#o.targetPort, noDelay: true });
    const pair: [Socket, Socket] = [client, upstream];
    this.#pairs.add(pair);
    const close = (): void => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.once('error', (err: NodeJS.ErrnoException) => {
      if (connected || err.code !== 'ECONNREFUSED') return;
      // The target refuses: so does the proxy (a reset now, then a closed port) until it is back.
      client.resetAndDestroy();
      void this.#targetRefused();
    });
    for (const s of pair) {
      s.on('error', close);
      s.on('close', close);
    }
  }

  async #targetRefused(): Promise<void> {
    if (this.#probe || this.#stopped) return;
    this.#probe = setInterval(() => {
      const probe = createConnection({ host: this.#o.targetHost, port: this.#o.targetPort });
      probe.once('error', () => probe.destroy());
      probe.once('connect', () => {
        probe.destroy();
        if (!this.#probe) return;
        clearInterval(this.#probe);
        this.#probe = undefined;
        if (!this.#cut && !this.#stopped && !this.#server) void this.#listen().catch(() => {});
      });
    }, 50);
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Destroys every forwarded connection and refuses new ones until heal(). Resolves once the listener is closed. */
  async cut(): Promise<void> {
    if (this.#cut) return;
    this.#cut = true;
    // (A probe for a refusing target goes on: heal() then listens only once the target is back.)
    const server = this.#server;
    this.#server = undefined;
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    for (const [client, upstream] of [...this.#pairs]) {
      this.stats.severed++;
      client.destroy();
      upstream.destroy();
    }
    this.#pairs.clear();
    await closed;
  }

  /** Listens again on the same port; new connections are forwarded. */
  async heal(): Promise<void> {
    if (!this.#cut || this.#stopped) return;
    this.#cut = false;
    if (this.#probe) return; // the target refuses: the probe listens once it is back
    // The port was ours a moment ago; another process may take it in between (then this throws).
    await this.#listen();
  }

  /** Closes the listener and every connection. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    await this.cut();
    this.#stopped = true;
    clearInterval(this.#probe);
    this.#probe = undefined;
  }
}

/** One proxy per target, cut and healed together: a client's whole path to a cluster. */
export class TcpProxyGroup {
  private constructor(readonly proxies: readonly TcpProxy[]) {}

  /** Proxies to each `HOST:PORT` of `targets`, in order. */
  static async start(targets: readonly string[]): Promise<TcpProxyGroup> {
    const proxies: TcpProxy[] = [];
    try {
      for (const t of targets) {
        const m = /^(.+):(\d+)$/.exec(t);
        if (!m) throw new Error(`TcpProxyGroup: target "${t}" is not HOST:PORT`);
        proxies.push(await TcpProxy.start({ targetHost: m[1]!, targetPort: Number(m[2]) }));
      }
    } catch (err) {
      await Promise.all(proxies.map((p) => p.stop()));
      throw err;
    }
    return new TcpProxyGroup(proxies);
  }

  /** `HOST:PORT` of each proxy, in target order. */
  get hostPorts(): string[] {
    return this.proxies.map((p) => p.hostPort);
  }

  async cut(): Promise<void> {
    await Promise.all(this.proxies.map((p) => p.cut()));
  }

  async heal(): Promise<void> {
    await Promise.all(this.proxies.map((p) => p.heal()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.proxies.map((p) => p.stop()));
  }
}
