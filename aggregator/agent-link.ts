import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { Logger } from 'pino';
import { AGENT_WS_PATH, AgentMessage, MAINTENANCE_PROTOCOL, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, type Hello, type Maintenance, type MaintenanceResult, type Unwatch, type Watch, type Welcome } from '../shared/protocol.js';
import { CloseCode, MAX_CLOSE_REASON_BYTES } from '../shared/close-codes.js';
import { frameBuffer, parseFrame } from '../shared/parse-frame.js';
import { AwakeClock } from '../shared/awake-clock.js';
import { clipForLog, truncateUtf8 } from '../shared/truncate.js';
import { normalizeAddress } from '../shared/net-address.js';
import { StoreUnavailableError, type CatalogStore } from './catalog/store.js';
import { MessageParts, type WholeMessage } from './message-parts.js';
import { NameWatch, type NameWatcher, type NameWatchOptions } from './name-watch.js';
import { AgentCredentials, type Credential } from './agent-credentials.js';
import type { AgentTokensFile } from './agent-tokens.js';
import { audit } from './audit-log.js';

export interface AgentLinkOptions {
  store: CatalogStore;
  datacenter: string;
  logger: Logger;
  /** Shared secret agents must present as `Authorization: Bearer <token>`; covers any node name. */
  token?: string;
  /** `--agent-tokens`: per-node tokens, each covering one node name (see AgentCredentials). */
  agentTokens?: AgentTokensFile;
  /** `--client-ca`: the TLS server verified client certificates; agents must present one naming their node. */
  clientCertificates?: boolean;
  maxPayload: number;
  heartbeatMs: number;
  suspectAfterMs: number;
  helloTimeoutMs?: number;
  /** Bounds of the names pushed to agents' local DNS (watch/unwatch). */
  nameWatch?: NameWatchOptions;
  /** How long an agent has to answer a maintenance request (default MAINTENANCE_TIMEOUT_MS). */
  maintenanceTimeoutMs?: number;
}

/** An agent answers a maintenance request in milliseconds; one that has not in this long is not going to. */
export const MAINTENANCE_TIMEOUT_MS = 5000;

/** A maintenance change as the API asks it of a node's agent. */
export type MaintenanceRequest = Omit<Maintenance, 'type' | 'id'>;

/**
 * What became of a maintenance request: applied (the catalog already shows it here), refused by
 * the agent (with its reason), or not asked or not answered: no connection to the node's agent
 * here, an agent too old for it, no answer in time, or the connection lost before the answer.
 */
export type MaintenanceAnswer =
  | { kind: 'applied' }
  | { kind: 'refused'; error: string }
  | { kind: 'notHeld' }
  | { kind: 'oldProtocol'; protocol: number }
  | { kind: 'timeout'; afterMs: number }
  | { kind: 'disconnected' };

interface PendingMaintenance {
  resolve: (answer: MaintenanceAnswer) => void;
  timer: NodeJS.Timeout;
}

/** Upper bound on how late after suspectAfter of silence a node is suspected. */
const SILENCE_CHECK_MS = 250;

/** A pause of the aggregator itself this long is logged (it is never counted as agents' silence). */
const PAUSE_LOG_MS = 1000;

/**
 * Most bytes of frames one snapshot or delta in parts may take: 5,000 services of ~600 bytes
 * are 3 MB; this leaves room for 10,000 services (MAX_SERVICES) with large meta.
 */
const MAX_PARTS_BYTES = 32 * 1024 * 1024;

/**
 * Most connections that have not said hello yet: each costs ~17 kB until its hello timeout
 * (2,000 cost 34 MB). An agent says hello at once, so only a flood reaches this; past it an
 * upgrade is refused with HTTP 503 before any WebSocket exists, and the agent retries.
 */
export const MAX_AWAITING_HELLO = 256;

const STORE_UNAVAILABLE = 'aggregator cannot write its store (etcd unreachable); use another aggregator';

/** How long a node whose agent was sent away (4010) stays up here for another aggregator to take it over. */
const MOVE_GRACE_MS = 5000;

/** A flood of refusals is logged once per this period, with a count, not a line each. */
const FLOOD_LOG_MS = 5000;

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
  /** What it proved at the upgrade: which node names it may speak for. */
  credential: Credential;
  hello?: Hello;
  live: boolean;
  /** On the link's awake clock: a pause of the aggregator itself is never the agent's silence. */
  lastHeard: number;
  /** ms since epoch the connection was accepted. */
  openedAt: number;
  closing: boolean;
  /** Sent away because the store cannot write: its node stays up while the agent moves. */
  movedAway: boolean;
  parts: MessageParts;
  /** The names this agent's local DNS watches; opened on its first watch. */
  names?: NameWatcher;
  /** Maintenance requests sent to this agent and not answered yet, by request ID. */
  pending: Map<string, PendingMaintenance>;
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
  /** node name → the tail of its writes: each node's writes reach the store one at a time, in order. */
  readonly #writes = new Map<string, Promise<void>>();
  readonly #unwatchStore: () => void;
  readonly #heartbeat: NodeJS.Timeout;
  readonly #silenceCheck: NodeJS.Timeout;
  readonly #clock: AwakeClock;
  readonly #credentials: AgentCredentials;
  #awaitingHello = 0;
  /** The last maintenance request's ID (IDs are unique per aggregator process). */
  #maintenanceSeq = 0;
  readonly #busyRefusals: FloodLog;
  readonly #helloTimeouts: FloodLog;
  readonly stats: LinkStats = { messages: new Map(), rejections: new Map() };
  /** Agents' watched names and the pushes of their data. */
  readonly names: NameWatch;

  constructor(opts: AgentLinkOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'agent-link' });
    // One message a turn per connection: a burst of parts (29 of 64 KiB for 5,000 services)
    // read in one poll phase was otherwise parsed in one go, holding the loop ~100 ms; this
    // way timers, DNS and other agents' pongs get in between.
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayload, allowSynchronousEvents: false });
    this.#credentials = new AgentCredentials({ token: opts.token, tokens: opts.agentTokens, clientCertificates: opts.clientCertificates ?? false, logger: this.#log });
    this.names = new NameWatch(opts.store.query, opts.nameWatch);
    this.#busyRefusals = new FloodLog(this.#log, `agent connection refused: ${MAX_AWAITING_HELLO} connections already waiting to say hello`);
    this.#helloTimeouts = new FloodLog(this.#log, 'agent connection refused: no hello received in time');
    this.#heartbeat = setInterval(() => this.#ping(), opts.heartbeatMs);
    this.#heartbeat.unref();
    // Checked more often than pinged: a node turns critical soon after suspectAfter of silence,
    // not up to a whole heartbeat later.
    const checkMs = Math.min(opts.heartbeatMs, SILENCE_CHECK_MS);
    this.#clock = new AwakeClock(checkMs);
    this.#silenceCheck = setInterval(() => this.#checkSilence(), checkMs);
    this.#silenceCheck.unref();
    this.#unwatchStore = opts.store.onWritableChange((writable) => {
      if (!writable) this.#moveAgentsAway();
    });
  }

  /** Handles an HTTP upgrade if it is for the agent path; returns false otherwise. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (new URL(req.url ?? '/', 'http://x').pathname !== AGENT_WS_PATH) return false;
    const admission = this.#credentials.admit(req);
    if (!admission.ok) {
      bump(this.stats.rejections, CloseCode.unauthorized);
      const remote = normalizeAddress(req.socket.remoteAddress ?? '');
      audit(this.#log, 'warn', 'refuse', { remote, credential: 'none', status: 401, reason: admission.reason }, 'agent refused at the upgrade');
      socket.end(`HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${admission.reason}\n`);
      return true;
    }
    if (this.#awaitingHello >= MAX_AWAITING_HELLO) {
      bump(this.stats.rejections, CloseCode.tryAgainLater);
      this.#busyRefusals.add(normalizeAddress(req.socket.remoteAddress ?? ''));
      socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\ntoo many agent connections waiting to say hello; try again later\n');
      return true;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws, req, admission.credential));
    return true;
  }

  /** Closes every agent connection; the catalog keeps what it has. */
  async close(): Promise<void> {
    clearInterval(this.#heartbeat);
    clearInterval(this.#silenceCheck);
    this.#busyRefusals.close();
    this.#helloTimeouts.close();
    this.#unwatchStore();
    this.names.close();
    for (const s of this.#sessions) {
      s.closing = true;
      s.ws.close(CloseCode.goingAway, 'aggregator shutting down');
    }
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
    await Promise.all(this.#writes.values());
  }

  get connectedAgents(): number {
    return this.#byNode.size;
  }

  /** The connection holding a node here, if any: since when (ms since epoch) and the protocol it speaks. */
  connection(node: string): { since: number; protocol: number } | undefined {
    const s = this.#byNode.get(node);
    return s && { since: s.openedAt, protocol: s.hello!.protocol };
  }

  /** Which agent checks apply (for the start-up log; no secrets). */
  get credentialChecks(): AgentCredentials['summary'] & { configured: boolean } {
    return { configured: this.#credentials.configured, ...this.#credentials.summary };
  }

  /**
   * Reads --agent-tokens again (SIGHUP). Connected agents stay, except those whose node token
   * the new file no longer has (or gives to another node): they are closed with 4003, and
   * cannot come back with it. A bad file changes nothing.
   */
  reloadCredentials(): boolean {
    if (!this.#credentials.reload()) return false;
    for (const s of this.#sessions) {
      if (this.#credentials.revoked(s.credential)) this.#refuse(s, CloseCode.unauthorized, 'agent token revoked (--agent-tokens reloaded)');
    }
    return true;
  }

  #accept(ws: WebSocket, req: IncomingMessage, credential: Credential): void {
    const session: Session = {
      ws,
      remote: normalizeAddress(req.socket.remoteAddress ?? ''),
      credential,
      live: false,
      lastHeard: this.#clock.now(),
      openedAt: Date.now(),
      closing: false,
      movedAway: false,
      parts: new MessageParts(MAX_PARTS_BYTES),
      pending: new Map(),
    };
    this.#sessions.add(session);
    this.#awaitingHello++;
    // ws closes a frame over maxPayload itself, with 1009 and no reason: count and log it as
    // any refusal, and give the reason.
    const close = ws.close.bind(ws);
    ws.close = (code?: number, reason?: string | Buffer) => {
      if (code !== CloseCode.tooBig || reason !== undefined) return close(code, reason);
      this.#refuse(session, code, `message over the limit of ${this.#opts.maxPayload} bytes`, close);
    };
    // Judged after the poll phase, like silence: after a pause of the aggregator, a hello that
    // arrived in time is read before the timer can refuse it.
    const helloTimer = setTimeout(
      () =>
        setImmediate(() => {
          if (!session.hello) this.#refuse(session, CloseCode.helloTimeout, 'no hello received in time');
        }),
      this.#opts.helloTimeoutMs ?? 5000,
    );
    ws.on('message', (data, isBinary) => {
      this.#heard(session);
      this.#onFrame(session, data, isBinary, helloTimer);
    });
    ws.on('ping', () => this.#heard(session));
    ws.on('pong', () => this.#heard(session));
    ws.on('error', (err) => this.#log.warn({ remote: session.remote, node: session.hello?.node, err: err.message }, 'agent connection error'));
    ws.on('close', (code, reason) => {
      clearTimeout(helloTimer);
      if (!session.hello) this.#awaitingHello--;
      this.#sessions.delete(session);
      session.names?.close();
      for (const p of session.pending.values()) {
        clearTimeout(p.timer);
        p.resolve({ kind: 'disconnected' });
      }
      session.pending.clear();
      this.#onClosed(session, code, reason.toString());
    });
  }

  #heard(session: Session): void {
    session.lastHeard = this.#clock.now();
    if (session.live) this.#opts.store.touch(session.hello!.node);
  }

  #onFrame(session: Session, data: RawData, isBinary: boolean, helloTimer: NodeJS.Timeout): void {
    if (session.closing) return;
    const frame = frameBuffer(data);
    const msg = parseFrame(AgentMessage, frame, isBinary);
    if (!msg.ok) return this.#refuse(session, CloseCode.invalidMessage, msg.error);
    const m = msg.value;
    bump(this.stats.messages, m.type);
    if (!session.hello) {
      if (m.type !== 'hello') return this.#refuse(session, CloseCode.invalidMessage, `expected hello, got ${m.type}`);
      clearTimeout(helloTimer);
      this.#awaitingHello--;
      return this.#onHello(session, m);
    }
    switch (m.type) {
      case 'hello':
        return this.#refuse(session, CloseCode.invalidMessage, 'hello sent twice');
      case 'snapshot': {
        const uncovered = this.#credentials.refusal(session.credential, m.node.name);
        if (uncovered) return this.#refuse(session, CloseCode.unauthorized, `snapshot: ${uncovered.reason}`);
        if (m.node.name !== session.hello.node) {
          return this.#refuse(session, CloseCode.wrongNode, `snapshot for node ${m.node.name} on a connection for ${session.hello.node}`);
        }
        return this.#onPart(session, m, frame.length);
      }
      case 'delta':
        if (!session.live) return this.#refuse(session, CloseCode.invalidMessage, 'delta before snapshot');
        if (m.node && m.node.name !== session.hello.node) {
          return this.#refuse(session, CloseCode.wrongNode, `delta for node ${m.node.name} on a connection for ${session.hello.node}`);
        }
        return this.#onPart(session, m, frame.length);
      case 'goodbye':
        this.#log.info({ node: session.hello.node }, 'agent said goodbye; node leaves the catalog');
        if (this.#byNode.get(session.hello.node) === session) {
          this.#byNode.delete(session.hello.node);
          const node = session.hello.node;
          // Not #write: it skips the writes of a closing connection, and this one closes just below.
          this.#enqueue(node, () => this.#opts.store.removeNode(node));
        }
        session.closing = true;
        session.ws.close(CloseCode.normal, 'goodbye');
        return;
      case 'watch':
      case 'unwatch':
        if (!session.live) return this.#refuse(session, CloseCode.invalidMessage, `${m.type} before snapshot`);
        return this.#onWatch(session, m);
      case 'maintenanceResult':
        return this.#onMaintenanceResult(session, m);
    }
  }

  /**
   * Asks the agent holding `node` here to set maintenance (the API's drain), as its local API
   * would. Only an agent welcomed in MAINTENANCE_PROTOCOL or later is asked: an older one would
   * take the message for a bad one and reconnect.
   */
  requestMaintenance(node: string, request: MaintenanceRequest): Promise<MaintenanceAnswer> {
    const session = this.#byNode.get(node);
    if (!session || session.closing) return Promise.resolve({ kind: 'notHeld' });
    const protocol = session.hello!.protocol;
    if (protocol < MAINTENANCE_PROTOCOL) return Promise.resolve({ kind: 'oldProtocol', protocol });
    const id = String(++this.#maintenanceSeq);
    const afterMs = this.#opts.maintenanceTimeoutMs ?? MAINTENANCE_TIMEOUT_MS;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        session.pending.delete(id);
        resolve({ kind: 'timeout', afterMs });
      }, afterMs);
      session.pending.set(id, { resolve, timer });
      const message: Maintenance = { type: 'maintenance', id, ...request };
      session.ws.send(JSON.stringify(message));
    });
  }

  /**
   * Answered in the node's turn of the store, after the writes queued before it: the agent sent
   * the change's delta first, so the catalog shows it once the request is answered. An answer
   * nobody waits for (past its timeout) is dropped.
   */
  #onMaintenanceResult(session: Session, m: MaintenanceResult): void {
    const pending = session.pending.get(m.id);
    if (!pending) return;
    session.pending.delete(m.id);
    clearTimeout(pending.timer);
    const answer: MaintenanceAnswer = m.ok ? { kind: 'applied' } : { kind: 'refused', error: m.error ?? 'refused by the agent' };
    this.#enqueue(session.hello!.node, async () => pending.resolve(answer));
  }

  #onWatch(session: Session, m: Watch | Unwatch): void {
    session.names ??= this.names.open((text, sent) => session.ws.send(text, sent));
    if (m.type === 'unwatch') return session.names.unwatch(m.names);
    const refused = session.names.watch(m.names);
    if (refused) this.#refuse(session, CloseCode.invalidMessage, refused);
  }

  #onPart(session: Session, part: Parameters<MessageParts['add']>[0], frameBytes: number): void {
    // The per-instance work is done in this part's turn; the last part's apply only compares.
    this.#opts.store.prepare(part.type === 'snapshot' ? part.services : part.upsert);
    const outcome = session.parts.add(part, frameBytes);
    if (outcome.kind === 'refused') return this.#refuse(session, outcome.code, outcome.reason);
    if (outcome.kind === 'whole') this.#onMessage(session, outcome.message);
  }

  #onMessage(session: Session, m: WholeMessage): void {
    if (m.type === 'snapshot') return this.#onSnapshot(session, m);
    // The node's registration as a snapshot's path stores it: with what the hello said.
    const { agentVersion, engineId } = session.hello!;
    const registration = m.node && { ...m.node, agentVersion, engineId };
    this.#write(session, 'delta', (store, node) => store.updateServices(node, m.upsert, m.remove, registration));
  }

  /**
   * An aggregator that cannot write its store must not keep agents: their nodes would lapse on
   * every other aggregator. Each is told why and moves to another at once.
   */
  #moveAgentsAway(): void {
    this.#log.error({ agents: this.#byNode.size }, 'store unavailable: closing agent connections so that agents move to another aggregator');
    for (const s of this.#sessions) if (s.hello) this.#moveAway(s);
  }

  /**
   * Closes with 4010. The node is not released at once: its agent is healthy and on its way to
   * another aggregator, which takes the node over (releasing it here, once the store is back,
   * would withdraw a live host until then). If no aggregator has taken it after MOVE_GRACE_MS,
   * it is released (a conditional write: a no-op if another aggregator holds it by then).
   */
  #moveAway(session: Session): void {
    session.movedAway = true;
    this.#refuse(session, CloseCode.storeUnavailable, STORE_UNAVAILABLE);
  }

  #onHello(session: Session, hello: Hello): void {
    if (hello.protocol < MIN_PROTOCOL_VERSION || hello.protocol > PROTOCOL_VERSION) {
      return this.#refuse(
        session,
        CloseCode.protocolVersion,
        `protocol version ${hello.protocol} not supported; this aggregator speaks ${MIN_PROTOCOL_VERSION} to ${PROTOCOL_VERSION}`,
      );
    }
    session.hello = hello;
    // Before anything else is looked at: a node this credential does not cover is not touched,
    // nor is the connection holding it.
    const uncovered = this.#credentials.refusal(session.credential, hello.node);
    if (uncovered) return this.#refuse(session, CloseCode.unauthorized, uncovered.reason);
    if (!this.#opts.store.writable) return this.#refuse(session, CloseCode.storeUnavailable, STORE_UNAVAILABLE);
    const conflict = this.#conflict(session);
    if (conflict) return this.#refuse(session, CloseCode.nodeConflict, conflict);
    const welcome: Welcome = {
      type: 'welcome',
      // The version this connection speaks: the agent's own (an older agent checks for it).
      protocol: hello.protocol,
      observedAddress: session.remote,
      datacenter: this.#opts.datacenter,
      maxPayload: this.#opts.maxPayload,
    };
    session.ws.send(JSON.stringify(welcome));
  }

  /**
   * Two live engines claiming one node name are two hosts misconfigured alike: the newcomer is
   * refused, not allowed to evict the holder (they would take turns forever). The same engine
   * (an agent restarted, a reconnect) replaces its old connection; and once the holder's
   * connection is gone (closed, or cut for silence) the name is free, so a host whose engine ID
   * changed (disk replaced, engine reinstalled) takes its name over.
   */
  #conflict(session: Session): string | undefined {
    const { node, engineId } = session.hello!;
    const holder = this.#byNode.get(node);
    if (holder && holder !== session && !holder.closing) {
      const held = holder.hello!.engineId;
      // An agent that could not read its engine ID cannot be told apart: the newest wins, as before.
      if (!engineId || !held || held === engineId) return undefined;
      return `node name "${node}" is registered by engine ${held} from ${holder.remote}`;
    }
    if (holder === session) return undefined;
    const elsewhere = this.#opts.store.heldElsewhere(node);
    if (!elsewhere || !engineId || !elsewhere.engineId || elsewhere.engineId === engineId) return undefined;
    return `node name "${node}" is registered by engine ${elsewhere.engineId} through aggregator ${elsewhere.holder}`;
  }

  #onSnapshot(session: Session, { node, services }: Extract<WholeMessage, { type: 'snapshot' }>): void {
    const name = session.hello!.node;
    // Checked again here: both may have said hello before either registered.
    const conflict = this.#conflict(session);
    if (conflict) return this.#refuse(session, CloseCode.nodeConflict, conflict);
    const previous = this.#byNode.get(name);
    const replaced = previous && previous !== session ? previous : undefined;
    if (replaced) {
      this.#auditReplace(session, replaced);
      replaced.closing = true;
      replaced.ws.close(CloseCode.replaced, `node ${name} was claimed by a newer connection from ${session.remote}`);
    }
    this.#byNode.set(name, session);
    const first = !session.live;
    // Deltas may follow at once: they queue behind this write.
    session.live = true;
    const { agentVersion, engineId } = session.hello!;
    this.#write(session, 'snapshot', async (store) => {
      await store.replaceNode({ ...node, agentVersion, engineId }, services);
      if (!first) return;
      const fields = { node: name, address: node.address, services: services.length };
      // A takeover had its audit line when the older connection was closed; a registration has
      // it once the catalog shows it (a snapshot that failed to apply registered nothing).
      if (replaced) this.#log.info(fields, 'agent registered');
      else audit(this.#log, 'info', 'register', { ...this.#auditFields(session), ...fields }, 'agent registered');
    });
  }

  #auditReplace(session: Session, replaced: Session): void {
    const old = { remote: replaced.remote, engineId: replaced.hello?.engineId, credential: replaced.credential.kind };
    audit(this.#log, 'warn', 'replace', { ...this.#auditFields(session), replaced: old }, 'node name claimed by a newer connection');
  }

  /** Who a connection is, as every audit line about it says. */
  #auditFields(session: Session) {
    return { node: session.hello?.node, engineId: session.hello?.engineId, remote: session.remote, credential: session.credential.kind };
  }

  /**
   * A store write for the session's node, queued behind the node's earlier writes. A failed
   * write is the aggregator's (or its store's) fault, not the agent's: logged, and the
   * connection closed with a reason; the agent reconnects (elsewhere, if the store is down)
   * and sends a fresh snapshot. Writes of a connection being closed are skipped.
   */
  #write(session: Session, what: string, write: (store: CatalogStore, node: string) => Promise<void>): void {
    const node = session.hello!.node;
    this.#enqueue(node, async () => {
      if (session.closing) return;
      try {
        await write(this.#opts.store, node);
      } catch (err) {
        const unavailable = err instanceof StoreUnavailableError;
        this.#log.error({ node, err: err instanceof Error ? err.message : String(err) }, `applying the agent's ${what} failed`);
        if (unavailable) return this.#moveAway(session);
        if (this.#byNode.get(node) === session) this.#byNode.delete(node);
        this.#refuse(session, CloseCode.internalError, `aggregator failed to apply the ${what}`);
      }
    });
  }

  /** Runs `run` after the node's queued writes; a failure is logged (never thrown from here). */
  #enqueue(node: string, run: () => Promise<void>): void {
    const tail = (this.#writes.get(node) ?? Promise.resolve()).then(run).catch((err: unknown) => {
      this.#log.error({ node, err: err instanceof Error ? err.message : String(err) }, 'store write failed');
    });
    this.#writes.set(node, tail);
    void tail.then(() => {
      if (this.#writes.get(node) === tail) this.#writes.delete(node);
    });
  }

  #onClosed(session: Session, code: number, reason: string): void {
    const name = session.hello?.node;
    if (!name || this.#byNode.get(name) !== session) return;
    this.#byNode.delete(name);
    // The store reaps it after the reap delay unless an aggregator holds it again.
    const release = () => this.#enqueue(name, () => this.#opts.store.release(name, 'Agent connection closed'));
    if (!session.movedAway) {
      this.#log.warn({ node: name, code, reason }, 'agent connection lost; node suspect');
      return release();
    }
    const timer = setTimeout(() => {
      if (!this.#byNode.has(name)) release();
    }, MOVE_GRACE_MS);
    timer.unref();
  }

  /**
   * Only connections that said hello are pinged and judged for silence: one that has not is the
   * hello timer's to judge, and 2,000 that never will cost no pings meanwhile.
   */
  #ping(): void {
    for (const s of this.#sessions) if (s.hello) s.ws.ping();
  }

  #checkSilence(): void {
    const pausedMs = this.#clock.tick();
    if (pausedMs >= PAUSE_LOG_MS) {
      this.#log.warn({ pausedMs: Math.round(pausedMs) }, 'aggregator was paused; the pause does not count as agents\' silence');
    }
    // Judged in the check phase, after the poll phase has read what arrived meanwhile: after a
    // pause, the pongs that agents sent during it are read before anyone is judged.
    setImmediate(() => this.#cutSilent());
  }

  /** An agent silent for suspectAfter of the aggregator's running time is cut off and its node suspected. */
  #cutSilent(): void {
    const deadline = this.#clock.now() - this.#opts.suspectAfterMs;
    for (const s of this.#sessions) {
      if (s.closing || !s.hello || s.lastHeard >= deadline) continue;
      s.closing = true;
      this.#log.warn({ node: s.hello?.node, remote: s.remote }, 'agent missed heartbeats');
      s.ws.terminate();
    }
  }

  /** Counts and logs a refusal, and closes; `close` is ws's own when ws refused an oversized frame. */
  #refuse(session: Session, code: CloseCode, reason: string, close = session.ws.close.bind(session.ws)): void {
    if (session.closing) return;
    session.closing = true;
    bump(this.stats.rejections, code);
    // 2,000 silent connections wrote 346 KB of identical lines.
    if (code === CloseCode.helloTimeout) this.#helloTimeouts.add(session.remote);
    else {
      audit(this.#log, 'warn', 'refuse', { ...this.#auditFields(session), code, reason: clipForLog(reason) }, 'agent connection refused');
    }
    close(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));
  }
}

/**
 * A warning a flood would repeat: the first is logged at once, the rest of each FLOOD_LOG_MS
 * period as one line with their count and the last remote address.
 */
class FloodLog {
  #count = 0;
  #lastRemote = '';
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly log: Logger, private readonly msg: string) {}

  add(remote: string): void {
    this.#count++;
    this.#lastRemote = remote;
    if (!this.#timer) this.#flush();
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #flush(): void {
    this.#timer = undefined;
    if (this.#count === 0) return;
    this.log.warn({ count: this.#count, remote: this.#lastRemote, periodMs: FLOOD_LOG_MS }, this.msg);
    this.#count = 0;
    this.#timer = setTimeout(() => this.#flush(), FLOOD_LOG_MS);
    this.#timer.unref();
  }
}

function bump<K>(counts: Map<K, number>, key: K): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

