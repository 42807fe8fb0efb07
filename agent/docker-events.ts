import { createInterface } from 'node:readline';
import type Docker from 'dockerode';

export interface DockerEventsOptions {
  docker: Docker;
  /** Docker's event filters (`type`, `event`, …). */
  filters: Record<string, string[]>;
  /** Each event, parsed; lines that are not JSON are passed to onBadLine. */
  onEvent: (event: DockerEvent) => void;
  onBadLine?: (line: string) => void;
  /**
   * After every subscription: the re-list that catches up with what no stream reported. A
   * failure here counts as the engine being away (the follower retries).
   */
  onSubscribed: () => Promise<void>;
  /** Subscribing or the re-list failed; the next try is in `retryMs`. */
  onFailure: (err: unknown, retryMs: number) => void;
  /** The stream ended after a successful re-list (an engine restart): the follower subscribes again. */
  onEnded: () => void;
  /** The stream failed (it then counts as ended). */
  onStreamError?: (err: Error) => void;
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** Docker's event JSON, as much of it as the agent reads. */
export interface DockerEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

/**
 * One engine's event stream, followed for as long as it runs: subscribe first and then
 * re-list, so nothing between the two is lost; re-subscribe with backoff (doubling from
 * retryMinMs to retryMaxMs) and re-list whenever the stream ends, since events are lossy.
 */
export class DockerEvents {
  readonly #o: DockerEventsOptions;
  #stopped = false;
  #stream: NodeJS.ReadableStream | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #wakeRetry: (() => void) | undefined;
  #running: Promise<void> | undefined;

  constructor(opts: DockerEventsOptions) {
    this.#o = opts;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  start(): void {
    this.#running = this.#loop();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#wakeRetry?.();
    destroy(this.#stream);
    await this.#running;
  }

  async #loop(): Promise<void> {
    const min = this.#o.retryMinMs ?? 250;
    const max = this.#o.retryMaxMs ?? 5000;
    let delay = min;
    while (!this.#stopped) {
      try {
        const { ended } = await this.#subscribe();
        await this.#o.onSubscribed();
        delay = min;
        await ended;
        if (!this.#stopped) this.#o.onEnded();
      } catch (err) {
        destroy(this.#stream);
        if (this.#stopped) break;
        this.#o.onFailure(err, delay);
      }
      await this.#sleep(delay);
      delay = Math.min(max, delay * 2);
    }
  }

  /** Opens the event stream; resolves once subscribed, with a promise for its end. */
  async #subscribe(): Promise<{ ended: Promise<void> }> {
    const stream = await this.#o.docker.getEvents({ filters: this.#o.filters });
    this.#stream = stream;
    // Never rejects: an error ends the stream like a close, and the loop reconnects.
    const ended = new Promise<void>((resolve) => {
      stream.on('error', (err: Error) => {
        if (!this.#stopped) this.#o.onStreamError?.(err);
        resolve();
      });
      stream.on('end', resolve);
      stream.on('close', resolve);
    });
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    lines.on('line', (line) => this.#onLine(line));
    // readline re-emits the stream's error; the stream's own handler above deals with it.
    lines.on('error', () => {});
    return { ended };
  }

  #onLine(line: string): void {
    if (line.trim() === '') return;
    let event: DockerEvent;
    try {
      event = JSON.parse(line) as DockerEvent;
    } catch {
      this.#o.onBadLine?.(line);
      return;
    }
    this.#o.onEvent(event);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wakeRetry = resolve;
      this.#retryTimer = setTimeout(resolve, ms);
    });
  }
}

function destroy(stream: NodeJS.ReadableStream | undefined): void {
  (stream as { destroy?: () => void } | undefined)?.destroy?.();
}
