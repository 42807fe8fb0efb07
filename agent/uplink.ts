import WebSocket from 'ws';
import type { Logger } from 'pino';
import { AggregatorMessage, PROTOCOL_VERSION, RECONNECT_MAX_MS, type AgentMessage, type Delta, type Maintenance, type MaintenanceOutcome, type Names, type Snapshot, type WatchedName, type Welcome } from '../shared/protocol.js';
import { CloseCode, MAX_CLOSE_REASON_BYTES } from '../shared/close-codes.js';
import { VERSION } from '../shared/version.js';
import { parseFrame } from '../shared/parse-frame.js';
import { AwakeClock } from '../shared/awake-clock.js';
import { truncateUtf8 } from '../shared/truncate.js';
import { MAX_TEXT } from '../shared/model.js';
import { deltaFrames, nameMessages, snapshotFrames, type Frames } from './frame-split.js';
import { AggregatorEndpoints, nextEndpoint, parseAggregatorList, pinnedLookup, rotation, type Endpoint, type Resolver } from './aggregator-list.js';

export interface UplinkOptions {
  /**
   * Aggregator base URL (ws://host:8500 or wss://…), or a comma-separated list of them;
   * AGENT_WS_PATH is appended to each. A host name with several addresses counts as each.
   */
  aggregator: string;
  node: string;
  /** The Docker engine's ID for each hello ('' when unknown): tells this host from another of the same name. */
  engineId: () => string;
  token?: string;
  /** PEM CA certificate(s) for a wss:// aggregator signed by a private CA. */
  ca?: string;
  /** PEM client certificate and key for an aggregator that asks for one (--client-ca). */
  clientCertificate?: { cert: string; key: string };
  logger: Logger;
  /** The aggregator's data for names this agent watches (see watchNames()). */
  onNames?: (names: Names) => void;
  /**
   * Applies maintenance the aggregator asks for (protocol 4) and says whether it took it; the
   * answer goes back as sent, so the change's delta must have been flushed by then.
   */
  onMaintenance?: (m: Maintenance) => MaintenanceOutcome;
  /** The link went live (its snapshot sent: watches may be sent again) or dropped. */
  onLiveChange?: (live: boolean) => void;
  /** Runs on every welcome, before the snapshot is taken (host IP may change here). */
  onWelcome: (welcome: Welcome) => void | Promise<void>;
  /** The full state for the snapshot that follows each welcome. */
  snapshot: () => Snapshot;
  /** Changes since the last snapshot/delta; null when there are none. */
  delta: () => Omit<Delta, 'type'> | null;
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Least delay before retrying after the aggregator said another engine holds the node name. */
  conflictRetryMs?: number;
  /** The agent pings this often (in case the aggregator's own heartbeat is slower) and checks its silence. */
  pingMs?: number;
  /** Drops a connection it heard nothing from for this long of its own running time. */
  silenceMs?: number;
  /** Resolves the host names of the list, all addresses (default: the system resolver). */
  resolve?: Resolver;
  /** Random numbers in [0, 1) for the starting point, the jitter and the backoff (default Math.random). */
  random?: () => number;
  /** The move to the next aggregator waits a random delay up to this (spreads a fleet's reconnects). */
  failoverJitterMs?: number;
  /**
   * TCP, TLS and the WebSocket upgrade must take no longer, else the attempt failed. Default
   * CONNECT_TIMEOUT_MS with one aggregator, FAILOVER_CONNECT_TIMEOUT_MS with several (counted
   * after resolving: a name with several addresses is several).
   */
  connectTimeoutMs?: number;
  /** After the upgrade, the welcome must come within this (default WELCOME_TIMEOUT_MS). */
  welcomeTimeoutMs?: number;
}

/** Figures for the agent's metrics, read when scraped. */
export interface UplinkStats {
  /** Connections lost and retried. */
  reconnects: number;
  /** Registrations with an aggregator other than the one this agent was last registered with. */
  failovers: number;
  /** The aggregator the agent is registered with ('' when none): the entry, with the address a name resolved to. */
  readonly aggregator: string;
  /** Bytes handed to the socket and not yet sent (the send queue). */
  readonly bufferedBytes: number;
  readonly connected: boolean;
}

/**
 * Reconnect backoff bounds. The cap keeps an agent's reconnect (a delay in [½, 1] of it) within
 * the 5 s in which the catalog must be complete again after the aggregator returns, however long
 * it was away. The backoff restarts only once the aggregator has accepted the snapshot, so an
 * agent whose messages are refused backs off as from any failed connect.
 */
export const RETRY_MIN_MS = 500;
export const RETRY_MAX_MS = RECONNECT_MAX_MS;

/**
 * Another host holds the node name: a misconfiguration that retrying soon will not mend. Slow
 * retries let this host take the name over once the holder is gone, without flapping.
 */
export const CONFLICT_RETRY_MS = 30_000;

/**
 * The aggregator pings every second (its --heartbeat); 15 s without a word, counted on the
 * agent's own running time, tolerates a 10 s pause of the aggregator with room to spare.
 */
export const PING_MS = 5000;
export const SILENCE_MS = 15_000;

/**
 * With several aggregators, the next one is tried at once after a failure (a random delay up to
 * this, so that the agents of a failed aggregator do not all arrive in the same millisecond):
 * an aggregator killed outright is replaced well within its peers' suspect window. The backoff
 * applies only once a whole round of the list has failed.
 */
export const FAILOVER_JITTER_MS = 100;

/** TCP + TLS + upgrade of the one aggregator (ws's handshake timeout, as before lists). */
export const CONNECT_TIMEOUT_MS = 10_000;

/**
 * The same with several aggregators: a live one on a LAN completes the upgrade in milliseconds,
 * so one that has not within 3 s (a host gone, packets dropped) is passed for the next.
 */
export const FAILOVER_CONNECT_TIMEOUT_MS = 3000;

/**
 * An aggregator that took the upgrade is up; a late welcome means it is busy (a fleet arriving at
 * once), and leaving it would only add the same load elsewhere. Only one that stays mute this
 * long (hung) is left.
 */
export const WELCOME_TIMEOUT_MS = 10_000;

/** Payload of the ping that follows the snapshot: its pong says the aggregator took everything before it. */
const ACK_PING = 'registered';

/**
 * The oldest aggregator protocol this agent speaks: 3 has all it uses but address watches (4).
 * Aggregators welcome an agent in the agent's own version and refuse a newer one than theirs, so
 * an agent refused for its version says hello again in the version before (see #onClose).
 */
export const OLDEST_AGGREGATOR_PROTOCOL = 3;
/** The version that brought address watches (reverse lookups for the local DNS). */
const ADDRESS_WATCH_PROTOCOL = 4;

/** One connection attempt: where to, and what became of it. */
interface Attempt {
  readonly ws: WebSocket;
  readonly to: Endpoint;
  /** The protocol version the hello offered. */
  readonly protocol: number;
  /** The aggregator took the snapshot (its pong to the ack ping came back). */
  registered: boolean;
  /** What went wrong, when the agent knows better than the close code (HTTP status, connect error, timeout). */
  failure?: string;
}

/**
 * The agent's connection to an aggregator: hello → welcome → snapshot → deltas, and
 * again from hello after any drop. While it is down nothing is queued: the snapshot on
 * reconnect carries the whole state, so any aggregator of the list can take it.
 *
 * With several aggregators (a list, or a name with several addresses) the agent starts at a
 * random one and, when a connection drops or is refused (TCP, HTTP 401/503, a close code) or
 * times out, tries the next at once; the exponential backoff (with jitter) applies once a whole
 * round has failed, and the list is resolved again at each round. One that closes with 4010
 * (store unavailable) is tried last until it takes a snapshot again. With one aggregator this is
 * the single connection with backoff it always was.
 */
export class Uplink {
  readonly #o: UplinkOptions;
  readonly #log: Logger;
  readonly #endpoints: AggregatorEndpoints;
  readonly #random: () => number;
  /** This agent's own order of the endpoints (see rotation()). */
  readonly #seed: number;
  /** The endpoints of this round, in rotation order, and those this round has tried. */
  #ordered: Endpoint[] = [];
  #tried = new Set<string>();
  /** Endpoints that closed with storeUnavailable since they last took a snapshot: tried last. */
  readonly #avoid = new Set<string>();
  /** The endpoint that last took the snapshot, and why the connection to it ended. */
  #home: Endpoint | undefined;
  #homeLost: string | undefined;
  /** Why the last connection attempt ended. */
  #lastWhy: string | undefined;
  #failovers = 0;
  /** Bumped by every schedule and by stop(): a pending round that sees another number is dropped. */
  #seq = 0;
  #attemptNow: Attempt | undefined;
  #ws: WebSocket | undefined;
  /** The aggregator's max payload, from the welcome of the current connection. */
  #maxPayload = 0;
  /** The protocol version of the current connection, from its welcome. */
  #protocol = PROTOCOL_VERSION;
  #live = false;
  #stopped = false;
  /** Rounds failed since the last registration: the backoff's exponent. */
  #backoffStep = 0;
  #reconnects = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;

  constructor(opts: UplinkOptions) {
    this.#o = opts;
    this.#log = opts.logger.child({ component: 'uplink' });
    const targets = parseAggregatorList(opts.aggregator);
    this.#endpoints = new AggregatorEndpoints(targets, opts.resolve);
    this.#random = opts.random ?? Math.random;
    this.#seed = Math.floor(this.#random() * 2 ** 32);
  }

  start(): void {
    this.#schedule(0, undefined, true, []);
  }

  /** True between the snapshot and the next drop. */
  get live(): boolean {
    return this.#live;
  }

  /** The aggregator that holds this host's node now (undefined while none does): the local API forwards reads there. */
  get aggregator(): Endpoint | undefined {
    return this.#live ? this.#attemptNow?.to : undefined;
  }

  /** Sends what changed, if the link is live; otherwise the next snapshot will. */
  flush(): void {
    if (!this.#live) return;
    const d = this.#o.delta();
    if (d) this.#sendFrames('delta', deltaFrames(d, this.#maxPayload));
  }

  /**
   * Asks the aggregator to push (watch) or stop pushing (unwatch) these names' data, in messages
   * within its max payload; addresses only to an aggregator of protocol 4 or later (an older one
   * would take the watch for a bad message). False when the link is not live (the caller sends
   * its whole set again when it is: onLiveChange), or when none of the names could be sent.
   */
  watchNames(type: 'watch' | 'unwatch', names: readonly WatchedName[]): boolean {
    if (!this.#live) return false;
    const sendable = this.#protocol >= ADDRESS_WATCH_PROTOCOL ? names : names.filter((n) => n.kind !== 'address');
    if (sendable.length === 0) return false;
    for (const text of nameMessages(type, sendable, this.#maxPayload)) this.#sendText(text);
    return true;
  }

  /** Says goodbye (the node leaves the catalog at once) and closes. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#seq++;
    clearTimeout(this.#retryTimer);
    const ws = this.#ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    if (this.#live) this.#send({ type: 'goodbye' });
    if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    else ws.close(CloseCode.normal, 'agent stopping');
    const timer = setTimeout(() => ws.terminate(), 2000);
    await closed;
    clearTimeout(timer);
  }

  /**
   * Connects to the endpoint after `from` once `delayMs` has passed. A fresh round resolves the
   * list again (in parallel with the delay) and starts with only `tried` counted as tried.
   */
  #schedule(delayMs: number, from: Endpoint | undefined, fresh: boolean, tried: readonly string[]): void {
    const seq = ++this.#seq;
    const endpoints = fresh ? this.#endpoints.resolve() : Promise.resolve(this.#ordered);
    const go = (): void =>
      void endpoints.then((list) => {
        if (this.#stopped || seq !== this.#seq) return;
        if (fresh) {
          this.#ordered = rotation(list, this.#seed);
          this.#tried = new Set(tried);
        }
        const next = nextEndpoint(this.#ordered, this.#seed, from, this.#tried, this.#avoid);
        // Only `from` is left (DNS dropped the others): that makes a whole round failed.
        if (!next) return this.#schedule(this.#backoff(), from, true, []);
        if (from && next.key !== from.key) this.#log.info({ from: from.label, to: next.label, why: this.#lastWhy }, 'trying another aggregator');
        this.#connect(next);
      });
    if (delayMs <= 0) go();
    else this.#retryTimer = setTimeout(go, delayMs);
  }

  #connect(to: Endpoint, protocol = PROTOCOL_VERSION): void {
    this.#tried.add(to.key);
    // Judged on this round's endpoints: one name with one address is a single aggregator, as ever.
    const connectTimeoutMs = this.#o.connectTimeoutMs ?? (this.#ordered.length > 1 ? FAILOVER_CONNECT_TIMEOUT_MS : CONNECT_TIMEOUT_MS);
    const headers: Record<string, string> = this.#o.token ? { authorization: `Bearer ${this.#o.token}` } : {};
    const ws = new WebSocket(to.url, {
      headers,
      handshakeTimeout: connectTimeoutMs,
      ...(this.#o.ca === undefined ? {} : { ca: this.#o.ca }),
      ...this.#o.clientCertificate,
      // A resolved name: connect to that address; the URL keeps the name for Host and TLS.
      ...(to.address === undefined ? {} : { lookup: pinnedLookup(to.address, to.family ?? 4) }),
    });
    const attempt: Attempt = { ws, to, protocol, registered: false };
    this.#ws = ws;
    this.#attemptNow = attempt;
    let welcomed = false;
    let welcomeTimer: NodeJS.Timeout | undefined;
    ws.on('open', () => {
      this.#log.debug({ url: to.label }, 'connected to aggregator; saying hello');
      this.#send({ type: 'hello', protocol, node: this.#o.node, agentVersion: VERSION, engineId: this.#o.engineId() });
      this.#watchSilence(ws, to);
      const welcomeTimeoutMs = this.#o.welcomeTimeoutMs ?? WELCOME_TIMEOUT_MS;
      welcomeTimer = setTimeout(() => {
        attempt.failure = `no welcome within ${welcomeTimeoutMs} ms`;
        this.#log.warn({ url: to.label }, `aggregator sent no welcome within ${welcomeTimeoutMs} ms; dropping the connection`);
        ws.terminate();
      }, welcomeTimeoutMs);
    });
    ws.on('message', (data, isBinary) => {
      const msg = parseFrame(AggregatorMessage, data, isBinary);
      if (!msg.ok) return this.#protocolError(ws, to, msg.error);
      if (msg.value.type === 'names') {
        if (!welcomed) return this.#protocolError(ws, to, 'names before welcome');
        return this.#o.onNames?.(msg.value);
      }
      if (msg.value.type === 'maintenance') {
        if (!this.#live || ws !== this.#ws) return this.#protocolError(ws, to, 'maintenance before the snapshot');
        return this.#onMaintenance(msg.value);
      }
      if (welcomed) return this.#protocolError(ws, to, `unexpected ${msg.value.type} after welcome`);
      welcomed = true;
      clearTimeout(welcomeTimer);
      void this.#onWelcome(attempt, msg.value);
    });
    ws.on('unexpected-response', (_req, res) => {
      attempt.failure = `HTTP ${res.statusCode}`;
      this.#log.error({ url: to.label, status: res.statusCode }, `aggregator refused the WebSocket upgrade (HTTP ${res.statusCode})`);
      ws.terminate();
    });
    ws.on('error', (err) => {
      attempt.failure ??= err.message;
      this.#log.warn({ url: to.label, err: err.message }, 'aggregator connection error');
    });
    ws.on('close', (code, reason) => {
      clearTimeout(welcomeTimer);
      this.#onClose(attempt, code, reason.toString());
    });
  }

  async #onWelcome(attempt: Attempt, welcome: Welcome): Promise<void> {
    const { ws, to } = attempt;
    if (welcome.protocol < OLDEST_AGGREGATOR_PROTOCOL || welcome.protocol > attempt.protocol) {
      return this.#protocolError(ws, to, `aggregator speaks protocol ${welcome.protocol}, this agent ${OLDEST_AGGREGATOR_PROTOCOL} to ${attempt.protocol}`);
    }
    try {
      await this.#o.onWelcome(welcome);
    } catch (err) {
      this.#log.error({ err: err instanceof Error ? err.message : String(err) }, 'handling the welcome failed');
    }
    if (ws !== this.#ws || ws.readyState !== WebSocket.OPEN) return;
    this.#maxPayload = welcome.maxPayload;
    this.#protocol = welcome.protocol;
    const snapshot = this.#o.snapshot();
    const frames = snapshotFrames(snapshot, this.#maxPayload);
    this.#sendFrames('snapshot', frames);
    this.#live = true;
    this.#o.onLiveChange?.(true);
    // ws reads frames in order: the pong to a ping sent after the last part means the aggregator
    // took them all (it closes at the first it refuses, and answers no ping after that).
    const onPong = (data: Buffer): void => {
      if (data.toString() !== ACK_PING) return;
      ws.off('pong', onPong);
      this.#backoffStep = 0;
      attempt.registered = true;
      this.#avoid.delete(to.key);
      const from = this.#home;
      this.#home = to;
      if (from && from.key !== to.key) {
        this.#failovers++;
        this.#log.info({ from: from.label, to: to.label, why: this.#homeLost }, `switched aggregator: ${from.label} → ${to.label}`);
      }
      const services = snapshot.services.length - frames.tooBig.length;
      this.#log.info({ url: to.label, datacenter: welcome.datacenter, services, frames: frames.frames.length }, 'registered with aggregator');
    };
    ws.on('pong', onPong);
    ws.ping(ACK_PING);
  }

  #onMaintenance(m: Maintenance): void {
    const outcome = this.#o.onMaintenance?.(m) ?? { ok: false, error: 'this agent does not take maintenance requests' };
    this.#log.info({ request: m.id, service: m.service, enable: m.enable, ok: outcome.ok, error: outcome.ok ? undefined : outcome.error }, 'maintenance requested by the aggregator');
    this.#send({ type: 'maintenanceResult', id: m.id, ...(outcome.ok ? outcome : { ok: false, error: outcome.error.slice(0, MAX_TEXT) }) });
  }

  get stats(): UplinkStats {
    return {
      reconnects: this.#reconnects,
      failovers: this.#failovers,
      bufferedBytes: this.#ws?.bufferedAmount ?? 0,
      connected: this.#live,
      aggregator: this.#live ? (this.#attemptNow?.to.label ?? '') : '',
    };
  }

  #onClose(attempt: Attempt, code: number, reason: string): void {
    clearInterval(this.#pingTimer);
    if (attempt.ws !== this.#ws) return;
    const wasLive = this.#live;
    this.#live = false;
    if (wasLive) this.#o.onLiveChange?.(false);
    if (this.#stopped) return;
    const { to } = attempt;
    if (code === CloseCode.protocolVersion && !attempt.registered && attempt.protocol > OLDEST_AGGREGATOR_PROTOCOL) {
      // An older aggregator: the same one again at once, in the version before this one.
      this.#log.info({ url: to.label, refused: attempt.protocol, reason }, `aggregator refused protocol ${attempt.protocol}; saying hello in ${attempt.protocol - 1}`);
      return this.#connect(to, attempt.protocol - 1);
    }
    this.#reconnects++;
    const why = attempt.failure ?? `closed ${code}${reason ? `: ${reason}` : ''}`;
    this.#lastWhy = why;
    if (attempt.registered) this.#homeLost = why;
    if (code === CloseCode.storeUnavailable) this.#avoid.add(to.key);
    let delay: number;
    let fresh: boolean;
    let tried: string[];
    if (code === CloseCode.nodeConflict) {
      // Another engine holds the name (on every aggregator alike): slow retries, a new round each.
      this.#backoffStep++;
      const least = this.#o.conflictRetryMs ?? CONFLICT_RETRY_MS;
      delay = least + this.#random() * (least / 2);
      fresh = true;
      tried = [];
    } else {
      // A connection that had registered ends its round: a new one starts, with it counted as tried.
      if (attempt.registered) this.#tried = new Set([to.key]);
      if (nextEndpoint(this.#ordered, this.#seed, to, this.#tried, this.#avoid)) {
        delay = this.#random() * (this.#o.failoverJitterMs ?? FAILOVER_JITTER_MS);
        fresh = attempt.registered;
        tried = [to.key];
      } else {
        delay = this.#backoff();
        fresh = true;
        tried = [];
      }
    }
    const level = code === CloseCode.normal || code === CloseCode.goingAway || code === 1006 || code === CloseCode.storeUnavailable ? 'warn' : 'error';
    // One message for every close (tools grep for it); the aggregator's reason says what was wrong.
    this.#log[level]({ url: to.label, node: this.#o.node, code, reason, why, retryMs: Math.round(delay) }, 'aggregator connection closed; reconnecting');
    this.#schedule(delay, to, fresh, tried);
  }

  /** The delay after a whole round failed: exponential backoff with jitter. */
  #backoff(): number {
    return backoff(this.#backoffStep++, this.#o.retryMinMs ?? RETRY_MIN_MS, this.#o.retryMaxMs ?? RETRY_MAX_MS, this.#random);
  }

  /**
   * Drops a connection the aggregator has been silent on for silenceMs (anything counts: its
   * heartbeat pings, pongs, messages). Counted on an AwakeClock and judged after the poll phase
   * has read what arrived, so the agent's own pause is never blamed on the aggregator.
   */
  #watchSilence(ws: WebSocket, to: Endpoint): void {
    const pingMs = this.#o.pingMs ?? PING_MS;
    const silenceMs = this.#o.silenceMs ?? SILENCE_MS;
    const clock = new AwakeClock(pingMs);
    let lastHeard = clock.now();
    const heard = (): void => void (lastHeard = clock.now());
    for (const event of ['ping', 'pong', 'message'] as const) ws.on(event, heard);
    this.#pingTimer = setInterval(() => {
      clock.tick();
      setImmediate(() => {
        if (ws.readyState !== WebSocket.OPEN) return;
        if (clock.now() - lastHeard > silenceMs) {
          this.#log.warn({ url: to.label, silentMs: Math.round(clock.now() - lastHeard) }, 'aggregator went silent; dropping the connection');
          ws.terminate();
          return;
        }
        ws.ping();
      });
    }, pingMs);
  }

  #protocolError(ws: WebSocket, to: Endpoint, error: string): void {
    this.#log.error({ url: to.label, error }, 'protocol error from aggregator');
    ws.close(CloseCode.invalidMessage, truncateUtf8(error, MAX_CLOSE_REASON_BYTES));
  }

  #send(msg: AgentMessage): void {
    this.#sendText(JSON.stringify(msg));
  }

  #sendFrames(what: 'snapshot' | 'delta', { frames, tooBig }: Frames): void {
    if (tooBig.length > 0) {
      this.#log.error({ services: tooBig.slice(0, 10), count: tooBig.length, maxPayload: this.#maxPayload }, `services left out of the ${what}: each is larger than the aggregator's max payload`);
    }
    for (const f of frames) this.#sendText(f);
  }

  #sendText(text: string): void {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(text);
  }
}

/** ws://host:8500 → ws://host:8500/v1/portolan/agent (http(s) accepted as ws(s)). */
export function agentUrl(aggregator: string): string {
  return parseAggregatorList(aggregator)[0]!.url;
}

/** Exponential backoff with jitter: a random delay in [½, 1] of min·2^attempt, capped. */
export function backoff(attempt: number, minMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20));
  return ceiling / 2 + random() * (ceiling / 2);
}
