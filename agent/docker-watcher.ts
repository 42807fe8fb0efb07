import { createInterface } from 'node:readline';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { KeyedQueue } from './keyed-queue.js';
import type { ContainerUpdate, UpdateCause } from './lifecycle.js';

export interface WatcherOptions {
  docker: Docker;
  /** Where the engine is, for log lines such as "waiting for Docker at …". */
  endpoint: string;
  logger: Logger;
  /** Periodic re-list; 0 = only after (re)connecting. */
  resyncSeconds: number;
  /** Containers the agent holds state for: re-inspected on every re-list even if not running. */
  tracked: () => Iterable<string>;
  onUpdate: (update: ContainerUpdate) => void;
  /**
   * An event seen before its inspect, when nothing else is pending for that container. Lets
   * the agent withdraw on `kill`/`stop` at once: Docker holds inspects of a stopping
   * container until it has stopped, which would delay the withdrawal by the stop itself.
   */
  onEarly?: (id: string, cause: UpdateCause, signal?: string) => void;
  /** Called after each complete re-list has been delivered. */
  onSynced?: () => void;
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** Docker's event JSON, as much of it as the agent reads. */
interface DockerEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

const containerActions = new Set<string>(['start', 'die', 'stop', 'kill', 'destroy', 'pause', 'unpause', 'rename', 'health_status']);

/**
 * Follows one Docker engine: subscribes to events first and then lists, so nothing
 * between the two is lost; re-subscribes with backoff and re-lists whenever the event
 * stream ends (engine restart, socket gone), since events are lossy. Emits the fresh
 * inspect of a container for every event, per container in Docker's order.
 */
export class DockerWatcher {
  readonly #o: WatcherOptions;
  readonly #log: Logger;
  readonly #queue = new KeyedQueue();
  #stopped = false;
  #stream: NodeJS.ReadableStream | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #wakeRetry: (() => void) | undefined;
  #resyncTimer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(opts: WatcherOptions) {
    this.#o = opts;
    this.#log = opts.logger.child({ component: 'docker-watcher' });
  }

  start(): void {
    this.#running = this.#loop();
    if (this.#o.resyncSeconds > 0) {
      this.#resyncTimer = setInterval(() => void this.resync().catch((err) => this.#log.warn({ err: errText(err) }, 'resync failed')), this.#o.resyncSeconds * 1000);
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#resyncTimer);
    clearTimeout(this.#retryTimer);
    this.#wakeRetry?.();
    destroy(this.#stream);
    await this.#running;
    await this.#queue.idle();
  }

  /** Re-lists every container and re-inspects the ones that matter. */
  async resync(): Promise<void> {
    const listed = await this.#o.docker.listContainers({ all: true });
    const present = new Set(listed.map((c) => c.Id));
    const tracked = new Set(this.#o.tracked());
    const wanted = listed.filter((c) => c.State === 'running' || c.State === 'paused' || tracked.has(c.Id)).map((c) => c.Id);
    const gone = [...tracked].filter((id) => !present.has(id));
    await Promise.all([
      ...wanted.map((id) => this.#enqueue(id, 'sync')),
      ...gone.map((id) => this.#queue.add(id, async () => this.#o.onUpdate({ id, cause: 'sync', inspect: null }), (err) => this.#taskFailed(id, err))),
    ]);
    this.#o.onSynced?.();
  }

  async #loop(): Promise<void> {
    const min = this.#o.retryMinMs ?? 250;
    const max = this.#o.retryMaxMs ?? 5000;
    let delay = min;
    let wasConnected = true;
    while (!this.#stopped) {
      try {
        const { ended } = await this.#subscribe();
        if (!wasConnected) this.#log.info({ docker: this.#o.endpoint }, 'connected to Docker');
        wasConnected = true;
        await this.resync();
        delay = min;
        await ended;
        if (!this.#stopped) this.#log.warn({ docker: this.#o.endpoint }, 'Docker event stream ended; reconnecting and re-listing');
      } catch (err) {
        destroy(this.#stream);
        if (this.#stopped) break;
        const level = wasConnected ? 'warn' : 'debug';
        this.#log[level]({ docker: this.#o.endpoint, err: errText(err), retryMs: delay }, `waiting for Docker at ${this.#o.endpoint}`);
        wasConnected = false;
      }
      await this.#sleep(delay);
      delay = Math.min(max, delay * 2);
    }
  }

  /** Opens the event stream; resolves once subscribed, with a promise for its end. */
  async #subscribe(): Promise<{ ended: Promise<void> }> {
    const stream = await this.#o.docker.getEvents({ filters: { type: ['container', 'network'] } });
    this.#stream = stream;
    // Never rejects: an error ends the stream like a close, and the loop reconnects.
    const ended = new Promise<void>((resolve) => {
      stream.on('error', (err) => {
        if (!this.#stopped) this.#log.warn({ docker: this.#o.endpoint, err: errText(err) }, 'Docker event stream failed');
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
      this.#log.warn({ line: line.slice(0, 200) }, 'unparseable Docker event');
      return;
    }
    const target = eventTarget(event);
    if (!target) return;
    if (!this.#queue.busy(target.id)) this.#o.onEarly?.(target.id, target.cause, target.signal);
    void this.#enqueue(target.id, target.cause, target.signal);
  }

  #enqueue(id: string, cause: UpdateCause, signal?: string): Promise<void> {
    return this.#queue.add(
      id,
      async () => {
        const inspect = await inspectOrNull(this.#o.docker, id);
        if (!this.#stopped) this.#o.onUpdate({ id, cause, ...(signal === undefined ? {} : { signal }), inspect });
      },
      (err) => this.#taskFailed(id, err),
    );
  }

  #taskFailed(id: string, err: unknown): void {
    // The engine went away mid-inspect; the re-list after reconnecting catches up.
    this.#log.warn({ container: id.slice(0, 12), err: errText(err) }, 'could not inspect container');
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wakeRetry = resolve;
      this.#retryTimer = setTimeout(resolve, ms);
    });
  }
}

/** Which container an event is about, and why; undefined for events the agent ignores. */
export function eventTarget(e: DockerEvent): { id: string; cause: UpdateCause; signal?: string } | undefined {
  const action = (e.Action ?? '').split(':')[0]?.trim() ?? '';
  if (e.Type === 'container' && containerActions.has(action) && e.Actor?.ID) {
    const signal = action === 'kill' ? e.Actor.Attributes?.signal : undefined;
    return { id: e.Actor.ID, cause: action as UpdateCause, ...(signal === undefined ? {} : { signal }) };
  }
  const container = e.Actor?.Attributes?.container;
  if (e.Type === 'network' && (action === 'connect' || action === 'disconnect') && container) {
    return { id: container, cause: action };
  }
  return undefined;
}

async function inspectOrNull(docker: Docker, id: string): Promise<Docker.ContainerInspectInfo | null> {
  try {
    return await docker.getContainer(id).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return null;
    throw err;
  }
}

function destroy(stream: NodeJS.ReadableStream | undefined): void {
  (stream as { destroy?: () => void } | undefined)?.destroy?.();
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
