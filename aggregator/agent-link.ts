import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { timingSafeEqual, createHash } from 'node:crypto';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Logger } from 'pino';
import { AGENT_WS_PATH, AgentMessage, PROTOCOL_VERSION, type Hello, type Snapshot, type Welcome } from '../shared/protocol.js';
import { CloseCode } from '../shared/close-codes.js';
import { parseFrame } from '../shared/parse-frame.js';
import type { CatalogStore } from './catalog.js';

export interface AgentLinkOptions {
  store: CatalogStore;
  datacenter: string;
  logger: Logger;
  /** Shared secret agents must present as `Authorization: Bearer <token>`. */
  token?: string;
  maxPayload: number;
  heartbeatMs: number;
  suspectAfterMs: number;
  reapAfterMs: number;
  helloTimeoutMs?: number;
}

/** Upper bound on how late after suspectAfter of silence a node is suspected. */
const SILENCE_CHECK_MS = 250;

/** Counters read by the metrics endpoint; plain numbers so the hot path stays cheap. */
export interface LinkStats {
  /** Valid messages by type. */
  messages: Map<string, number>;
  /** Connections closed by the aggregator, by close code. */
  rejections: Map<number, number>;
}

/** One agent connection's conversation: hello → snapshot → deltas, until goodbye or close. */
interface Session {
  ws: WebSocket;
  remote: string;
  hello?: Hello;
  live: boolean;
  lastHeard: number;
  closing: boolean;
}

/**
 * The aggregator end of the agent protocol. It is the only writer of the catalog: it
 * validates every frame, binds a connection to the node it said hello as, and owns node
 * liveness (suspect on silence, reap after a grace period).
 */
export class AgentLink {
  readonly #opts: AgentLinkOptions;
  readonly #wss: WebSocketServer;
  readonly #log: Logger;
  /** node name → its current session (the newest connection wins). */
  readonly #byNode = new Map<string, Session>();
  readonly #sessions = new Set<Session>();
  readonly #reapTimers = new Map<string, NodeJS.Timeout>();
  readonly #heartbeat: NodeJS.Timeout;
  readonly #silenceCheck: NodeJS.Timeout;
  readonly #tokenDigest: Buffer | undefined;
  readonly stats: LinkStats = { messages: new Map(), rejections: new Map() };

  constructor(opts: AgentLinkOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'agent-link' });
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayload });
    this.#tokenDigest = opts.token ? digest(opts.token) : undefined;
    this.#heartbeat = setInterval(() => this.#ping(), opts.heartbeatMs);
    this.#heartbeat.unref();
    // Checked more often than pinged: a node turns critical soon after suspectAfter of silence,
    // not up to a whole heartbeat later.
    this.#silenceCheck = setInterval(() => this.#cutSilent(), Math.min(opts.heartbeatMs, SILENCE_CHECK_MS));
    this.#silenceCheck.unref();
  }

  /** Handles an HTTP upgrade if it is for the agent path; returns false otherwise. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (new URL(req.url ?? '/', 'http://x').pathname !== AGENT_WS_PATH) return false;
    if (!this.#authorized(req)) {
      bump(this.stats.rejections, CloseCode.unauthorized);
      this.#log.warn({ remote: req.socket.remoteAddress }, 'agent refused: missing or wrong token');
      socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nmissing or wrong agent token\n');
      return true;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, req));
    return true;
  }

  /** Closes every agent connection; the catalog keeps what it has. */
  async close(): Promise<void> {
    clearInterval(this.#heartbeat);
    clearInterval(this.#silenceCheck);
    for (const t of this.#reapTimers.values()) clearTimeout(t);
    this.#reapTimers.clear();
    for (const s of this.#sessions) s.ws.close(CloseCode.goingAway, 'aggregator shutting down');
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }

  get connectedAgents(): number {
    return this.#byNode.size;
  }

  #authorized(req: IncomingMessage): boolean {
    if (!this.#tokenDigest) return true;
    const header = req.headers.authorization ?? '';
    const presented = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
    // Hashing first gives equal-length inputs, so the comparison time says nothing.
    return timingSafeEqual(digest(presented), this.#tokenDigest);
  }

  #accept(ws: WebSocket, req: IncomingMessage): void {
    const session: Session = {
      ws,
      remote: normalizeAddress(req.socket.remoteAddress ?? ''),
      live: false,
      lastHeard: Date.now(),
      closing: false,
    };
    this.#sessions.add(session);
    // ws closes a frame over maxPayload itself, with 1009 and no reason; give the reason.
    const close = ws.close.bind(ws);
    ws.close = (code?: number, reason?: string | Buffer) =>
      close(code, reason ?? (code === CloseCode.tooBig ? `message over the limit of ${this.#opts.maxPayload} bytes` : undefined));
    const helloTimer = setTimeout(
      () => this.#refuse(session, CloseCode.helloTimeout, 'no hello received in time'),
      this.#opts.helloTimeoutMs ?? 5000,
    );
    ws.on('message', (data, isBinary) => {
      session.lastHeard = Date.now();
      if (session.hello) this.#opts.store.touch(session.hello.node);
      this.#onFrame(session, data, isBinary, helloTimer);
    });
    ws.on('pong', () => {
      session.lastHeard = Date.now();
      if (session.live && session.hello) this.#opts.store.touch(session.hello.node);
    });
    ws.on('error', (err) => this.#log.warn({ remote: session.remote, err: err.message }, 'agent connection error'));
    ws.on('close', (code, reason) => {
      clearTimeout(helloTimer);
      // ws closes oversized frames itself, so they are counted here.
      if (code === CloseCode.tooBig) bump(this.stats.rejections, code);
      this.#sessions.delete(session);
      this.#onClosed(session, code, reason.toString());
    });
  }

  #onFrame(session: Session, data: RawData, isBinary: boolean, helloTimer: NodeJS.Timeout): void {
    if (session.closing) return;
    const msg = parseFrame(AgentMessage, data, isBinary);
    if (!msg.ok) return this.#refuse(session, CloseCode.invalidMessage, msg.error);
    const m = msg.value;
    bump(this.stats.messages, m.type);
    if (!session.hello) {
      if (m.type !== 'hello') return this.#refuse(session, CloseCode.invalidMessage, `expected hello, got ${m.type}`);
      clearTimeout(helloTimer);
      return this.#onHello(session, m);
    }
    switch (m.type) {
      case 'hello':
        return this.#refuse(session, CloseCode.invalidMessage, 'hello sent twice');
      case 'snapshot':
        if (m.node.name !== session.hello.node) {
          return this.#refuse(session, CloseCode.wrongNode, `snapshot for node ${m.node.name} on a connection for ${session.hello.node}`);
        }
        this.#onSnapshot(session, m.node, m.services);
        return;
      case 'delta':
        if (!session.live) return this.#refuse(session, CloseCode.invalidMessage, 'delta before snapshot');
        this.#opts.store.updateServices(session.hello.node, m.upsert, m.remove);
        return;
      case 'goodbye':
        this.#log.info({ node: session.hello.node }, 'agent said goodbye; node leaves the catalog');
        if (this.#byNode.get(session.hello.node) === session) {
          this.#byNode.delete(session.hello.node);
          this.#opts.store.removeNode(session.hello.node);
        }
        session.closing = true;
        session.ws.close(CloseCode.normal, 'goodbye');
        return;
    }
  }

  #onHello(session: Session, hello: Hello): void {
    if (hello.protocol !== PROTOCOL_VERSION) {
      return this.#refuse(
        session,
        CloseCode.protocolVersion,
        `protocol version ${hello.protocol} not supported; this aggregator speaks ${PROTOCOL_VERSION}`,
      );
    }
    session.hello = hello;
    const welcome: Welcome = {
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      observedAddress: session.remote,
      datacenter: this.#opts.datacenter,
    };
    session.ws.send(JSON.stringify(welcome));
  }

  #onSnapshot(session: Session, node: Snapshot['node'], services: Snapshot['services']): void {
    const name = session.hello!.node;
    const previous = this.#byNode.get(name);
    if (previous && previous !== session) {
      this.#log.warn({ node: name, old: previous.remote, new: session.remote }, 'node name claimed by a newer connection');
      previous.closing = true;
      previous.ws.close(CloseCode.replaced, `node ${name} was claimed by a newer connection from ${session.remote}`);
    }
    this.#byNode.set(name, session);
    this.#cancelReap(name);
    this.#opts.store.replaceNode({ ...node, agentVersion: session.hello!.agentVersion }, services);
    this.#opts.store.setConnected(name, true);
    if (!session.live) this.#log.info({ node: name, address: node.address, services: services.length }, 'agent registered');
    session.live = true;
  }

  #onClosed(session: Session, code: number, reason: string): void {
    const name = session.hello?.node;
    if (!name || this.#byNode.get(name) !== session) return;
    this.#byNode.delete(name);
    this.#log.warn({ node: name, code, reason }, 'agent connection lost; node suspect');
    this.#suspect(name, 'Agent connection closed');
  }

  #suspect(name: string, output: string): void {
    this.#opts.store.setConnected(name, false, output);
    this.#cancelReap(name);
    const timer = setTimeout(() => {
      this.#reapTimers.delete(name);
      if (this.#byNode.has(name)) return;
      this.#log.warn({ node: name }, 'agent did not come back; node reaped');
      this.#opts.store.removeNode(name);
    }, this.#opts.reapAfterMs);
    timer.unref();
    this.#reapTimers.set(name, timer);
  }

  #cancelReap(name: string): void {
    clearTimeout(this.#reapTimers.get(name));
    this.#reapTimers.delete(name);
  }

  #ping(): void {
    for (const s of this.#sessions) s.ws.ping();
  }

  /** An agent silent for suspectAfter is cut off and its node suspected. */
  #cutSilent(): void {
    const deadline = Date.now() - this.#opts.suspectAfterMs;
    for (const s of this.#sessions) {
      if (s.closing || s.lastHeard >= deadline) continue;
      s.closing = true;
      this.#log.warn({ node: s.hello?.node, remote: s.remote }, 'agent missed heartbeats');
      s.ws.terminate();
    }
  }

  #refuse(session: Session, code: CloseCode, reason: string): void {
    if (session.closing) return;
    session.closing = true;
    bump(this.stats.rejections, code);
    this.#log.warn({ remote: session.remote, node: session.hello?.node, code, reason }, 'agent connection refused');
    // Close reasons are limited to 123 bytes by RFC 6455.
    session.ws.close(code, truncateUtf8(reason, 123));
  }
}

function bump<K>(counts: Map<K, number>, key: K): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function normalizeAddress(addr: string): string {
  return addr.startsWith('::ffff:') ? addr.slice('::ffff:'.length) : addr;
}

function truncateUtf8(s: string, maxBytes: number): string {
  const buf = Buffer.from(s);
  if (buf.length <= maxBytes) return s;
  return buf.subarray(0, maxBytes).toString().replace(/\uFFFD$/, '');
}
