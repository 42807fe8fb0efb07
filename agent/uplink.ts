import WebSocket from 'ws';
import type { Logger } from 'pino';
import { AGENT_WS_PATH, AggregatorMessage, PROTOCOL_VERSION, type AgentMessage, type Delta, type Snapshot, type Welcome } from '../shared/protocol.js';
import { CloseCode } from '../shared/close-codes.js';
import { VERSION } from '../shared/version.js';
import { parseFrame } from '../shared/parse-frame.js';

export interface UplinkOptions {
  /** Aggregator base URL (ws://host:8500 or wss://…); AGENT_WS_PATH is appended. */
  aggregator: string;
  node: string;
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
  /** The agent pings this often and drops a connection that did not answer the last ping. */
  pingMs?: number;
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
 * it was away.
 */
export const RETRY_MIN_MS = 500;
export const RETRY_MAX_MS = 4000;

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
    if (d) this.#send({ type: 'delta', ...d });
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
      this.#send({ type: 'hello', protocol: PROTOCOL_VERSION, node: this.#o.node, agentVersion: VERSION });
      this.#startPinging(ws);
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
    const snapshot = this.#o.snapshot();
    this.#send(snapshot);
    this.#live = true;
    this.#attempt = 0;
    this.#log.info({ url: this.#url, datacenter: welcome.datacenter, services: snapshot.services.length }, 'registered with aggregator');
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
    const delay = backoff(this.#attempt++, this.#o.retryMinMs ?? RETRY_MIN_MS, this.#o.retryMaxMs ?? RETRY_MAX_MS);
    const level = code === CloseCode.normal || code === CloseCode.goingAway || code === 1006 ? 'warn' : 'error';
    this.#log[level]({ url: this.#url, code, reason, retryMs: Math.round(delay) }, 'aggregator connection closed; reconnecting');
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  #startPinging(ws: WebSocket): void {
    let answered = true;
    ws.on('pong', () => (answered = true));
    this.#pingTimer = setInterval(() => {
      if (!answered) {
        this.#log.warn({ url: this.#url }, 'aggregator did not answer a ping; dropping the connection');
        ws.terminate();
        return;
      }
      answered = false;
      ws.ping();
    }, this.#o.pingMs ?? 15_000);
  }

  #protocolError(ws: WebSocket, error: string): void {
    this.#log.error({ url: this.#url, error }, 'protocol error from aggregator');
    ws.close(CloseCode.invalidMessage, error.slice(0, 120));
  }

  #send(msg: AgentMessage): void {
    if (this.#ws?.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(msg));
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
