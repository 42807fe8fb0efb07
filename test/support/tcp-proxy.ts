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
 */
export class TcpProxy {
  readonly #o: Required<TcpProxyOptions>;
  readonly #pairs = new Set<[Socket, Socket]>();
  #server: Server | undefined;
  #port = 0;
  #cut = false;
  #stopped = false;
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
    upstream.once('connect', () => {
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    for (const s of pair) {
      s.on('error', close);
      s.on('close', close);
    }
  }

  /** Destroys every forwarded connection and refuses new ones until heal(). Resolves once the listener is closed. */
  async cut(): Promise<void> {
    if (this.#cut) return;
    this.#cut = true;
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
    // The port was ours a moment ago; another process may take it in between (then this throws).
    await this.#listen();
    this.#cut = false;
  }

  /** Closes the listener and every connection. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    await this.cut();
    this.#stopped = true;
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
