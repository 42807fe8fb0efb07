import WebSocket from 'ws';
import type { Logger } from 'pino';
import { AGENT_WS_PATH, AggregatorMessage, PROTOCOL_VERSION, RECONNECT_MAX_MS, type AgentMessage, type Delta, type Snapshot, type Welcome } from '../shared/protocol.js';
import { CloseCode, MAX_CLOSE_REASON_BYTES } from '../shared/close-codes.js';
import { VERSION } from '../shared/version.js';
import { parseFrame } from '../shared/parse-frame.js';
import { AwakeClock } from '../shared/awake-clock.js';
import { truncateUtf8 } from '../shared/truncate.js';
import { deltaFrames, snapshotFrames, type Frames } from './frame-split.js';

export interface UplinkOptions {
  /** Aggregator base URL (ws://host:8500 or wss://…); AGENT_WS_PATH is appended. */
  aggregator: string;
  node: string;
  /** The Docker engine's ID for each hello ('' when unknown): tells this host from another of the same name. */
  engineId: () => string;
  token?: string;
  /** PEM CA certificate(s) for a wss:// aggregator signed by a private CA. */
  ca?: string;
  logger: Logger;
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
}

/** Figures for the agent's metrics, read when scraped. */
export interface UplinkStats {
  /** Connections lost and retried. */
  reconnects: number;
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

/** Payload of the ping that follows the snapshot: its pong says the aggregator took everything before it. */
const ACK_PING = 'registered';

/**
 * The agent's connection to the aggregator: hello → welcome → snapshot → deltas, and
 * again from hello after any drop (exponential backoff with jitter). While it is
 * down nothing is queued: the snapshot on reconnect carries the whole state.
 */
export class Uplink {
  readonly #o: UplinkOptions;
  readonly #log: Logger;
  readonly #url: string;
  #ws: WebSocket | undefined;
  /** The aggregator's max payload, from the welcome of the current connection. */
  #maxPayload = 0;
  #live = false;
  #stopped = false;
  #attempt = 0;
  #reconnects = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;

  constructor(opts: UplinkOptions) {
    this.#o = opts;
    this.#log = opts.logger.child({ component: 'uplink' });
    this.#url = agentUrl(opts.aggregator);
  }

  start(): void {
    this.#connect();
  }

  /** True between the snapshot and the next drop. */
  get live(): boolean {
    return this.#live;
  }

  /** Sends what changed, if the link is live; otherwise the next snapshot will. */
  flush(): void {
    if (!this.#live) return;
    const d = this.#o.delta();
    if (d) this.#sendFrames('delta', deltaFrames(d, this.#maxPayload));
  }

  /** Says goodbye (the node leaves the catalog at once) and closes. */
  async stop(): Promise<void> {
    this.#stopped = true;
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

  #connect(): void {
    const headers: Record<string, string> = this.#o.token ? { authorization: `Bearer ${this.#o.token}` } : {};
    const ws = new WebSocket(this.#url, { headers, handshakeTimeout: 10_000, ...(this.#o.ca === undefined ? {} : { ca: this.#o.ca }) });
    this.#ws = ws;
    let welcomed = false;
    ws.on('open', () => {
      this.#log.debug({ url: this.#url }, 'connected to aggregator; saying hello');
      this.#send({ type: 'hello', protocol: PROTOCOL_VERSION, node: this.#o.node, agentVersion: VERSION, engineId: this.#o.engineId() });
      this.#watchSilence(ws);
    });
    ws.on('message', (data, isBinary) => {
      const msg = parseFrame(AggregatorMessage, data, isBinary);
      if (!msg.ok) return this.#protocolError(ws, msg.error);
      if (welcomed) return this.#protocolError(ws, `unexpected ${msg.value.type} after welcome`);
      welcomed = true;
      void this.#onWelcome(ws, msg.value);
    });
    ws.on('unexpected-response', (_req, res) => {
      this.#log.error({ url: this.#url, status: res.statusCode }, `aggregator refused the WebSocket upgrade (HTTP ${res.statusCode})`);
      ws.terminate();
    });
    ws.on('error', (err) => this.#log.warn({ url: this.#url, err: err.message }, 'aggregator connection error'));
    ws.on('close', (code, reason) => this.#onClose(ws, code, reason.toString()));
  }

  async #onWelcome(ws: WebSocket, welcome: Welcome): Promise<void> {
    if (welcome.protocol !== PROTOCOL_VERSION) {
      return this.#protocolError(ws, `aggregator speaks protocol ${welcome.protocol}, this agent ${PROTOCOL_VERSION}`);
    }
    try {
      await this.#o.onWelcome(welcome);
    } catch (err) {
      this.#log.error({ err: err instanceof Error ? err.message : String(err) }, 'handling the welcome failed');
    }
    if (ws !== this.#ws || ws.readyState !== WebSocket.OPEN) return;
    this.#maxPayload = welcome.maxPayload;
    const snapshot = this.#o.snapshot();
    const frames = snapshotFrames(snapshot, this.#maxPayload);
    this.#sendFrames('snapshot', frames);
    this.#live = true;
    // ws reads frames in order: the pong to a ping sent after the last part means the aggregator
    // took them all (it closes at the first it refuses, and answers no ping after that).
    const onPong = (data: Buffer): void => {
      if (data.toString() !== ACK_PING) return;
      ws.off('pong', onPong);
      this.#attempt = 0;
      const services = snapshot.services.length - frames.tooBig.length;
      this.#log.info({ url: this.#url, datacenter: welcome.datacenter, services, frames: frames.frames.length }, 'registered with aggregator');
    };
    ws.on('pong', onPong);
    ws.ping(ACK_PING);
  }

  get stats(): UplinkStats {
    return { reconnects: this.#reconnects, bufferedBytes: this.#ws?.bufferedAmount ?? 0, connected: this.#live };
  }

  #onClose(ws: WebSocket, code: number, reason: string): void {
    clearInterval(this.#pingTimer);
    if (ws !== this.#ws) return;
    this.#live = false;
    if (this.#stopped) return;
    this.#reconnects++;
    const delay = this.#retryDelay(code);
    const level = code === CloseCode.normal || code === CloseCode.goingAway || code === 1006 ? 'warn' : 'error';
    // One message for every close (tools grep for it); the aggregator's reason says what was wrong.
    this.#log[level]({ url: this.#url, node: this.#o.node, code, reason, retryMs: Math.round(delay) }, 'aggregator connection closed; reconnecting');
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  #retryDelay(code: number): number {
    const attempt = this.#attempt++;
    if (code === CloseCode.nodeConflict) {
      const least = this.#o.conflictRetryMs ?? CONFLICT_RETRY_MS;
      return least + Math.random() * (least / 2);
    }
    return backoff(attempt, this.#o.retryMinMs ?? RETRY_MIN_MS, this.#o.retryMaxMs ?? RETRY_MAX_MS);
  }

  /**
   * Drops a connection the aggregator has been silent on for silenceMs (anything counts: its
   * heartbeat pings, pongs, messages). Counted on an AwakeClock and judged after the poll phase
   * has read what arrived, so the agent's own pause is never blamed on the aggregator.
   */
  #watchSilence(ws: WebSocket): void {
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
          this.#log.warn({ url: this.#url, silentMs: Math.round(clock.now() - lastHeard) }, 'aggregator went silent; dropping the connection');
          ws.terminate();
          return;
        }
        ws.ping();
      });
    }, pingMs);
  }

  #protocolError(ws: WebSocket, error: string): void {
    this.#log.error({ url: this.#url, error }, 'protocol error from aggregator');
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
  const url = new URL(aggregator.includes('://') ? aggregator : `ws://${aggregator}`);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') throw new Error(`invalid aggregator URL "${aggregator}": expected ws://host:port`);
  url.pathname = `${url.pathname.replace(/\/$/, '')}${AGENT_WS_PATH}`;
  return url.toString();
}

/** Exponential backoff with jitter: a random delay in [½, 1] of min·2^attempt, capped. */
export function backoff(attempt: number, minMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20));
  return ceiling / 2 + random() * (ceiling / 2);
}
