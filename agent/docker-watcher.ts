import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { DockerEvents, type DockerEvent } from './docker-events.js';
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
  /** The engine's networks: re-listed before every container re-list and when an event names an unknown one. */
  networks?: { refresh(): Promise<void>; has(id: string): boolean };
  /** Called after each complete re-list has been delivered. */
  onSynced?: () => void;
  retryMinMs?: number;
  retryMaxMs?: number;
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
  readonly #events: DockerEvents;
  #resyncTimer: NodeJS.Timeout | undefined;
  /** Whether the last attempt reached Docker: failures after a success warn, repeated ones are debug. */
  #wasConnected = true;

  constructor(opts: WatcherOptions) {
    this.#o = opts;
    this.#log = opts.logger.child({ component: 'docker-watcher' });
    this.#events = new DockerEvents({
      docker: opts.docker,
      filters: { type: ['container', 'network'] },
      retryMinMs: opts.retryMinMs,
      retryMaxMs: opts.retryMaxMs,
      onEvent: (event) => this.#onEvent(event),
      onBadLine: (line) => this.#log.warn({ line: line.slice(0, 200) }, 'unparseable Docker event'),
      onSubscribed: async () => {
        if (!this.#wasConnected) this.#log.info({ docker: opts.endpoint }, 'connected to Docker');
        this.#wasConnected = true;
        await this.resync();
      },
      onFailure: (err, retryMs) => {
        const level = this.#wasConnected ? 'warn' : 'debug';
        this.#log[level]({ docker: opts.endpoint, err: errText(err), retryMs }, `waiting for Docker at ${opts.endpoint}`);
        this.#wasConnected = false;
      },
      onEnded: () => this.#log.warn({ docker: opts.endpoint }, 'Docker event stream ended; reconnecting and re-listing'),
      onStreamError: (err) => this.#log.warn({ docker: opts.endpoint, err: errText(err) }, 'Docker event stream failed'),
    });
  }

  start(): void {
    this.#events.start();
    if (this.#o.resyncSeconds > 0) {
      this.#resyncTimer = setInterval(() => void this.resync().catch((err) => this.#log.warn({ err: errText(err) }, 'resync failed')), this.#o.resyncSeconds * 1000);
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#resyncTimer);
    await this.#events.stop();
    await this.#queue.idle();
  }

  /** Re-lists every container and re-inspects the ones that matter. */
  async resync(): Promise<void> {
    await this.#o.networks?.refresh();
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

  #onEvent(event: DockerEvent): void {
    if (event.Type === 'network') this.#onNetworkEvent(event);
    const target = eventTarget(event);
    if (!target) return;
    if (!this.#queue.busy(target.id)) this.#o.onEarly?.(target.id, target.cause, target.signal);
    void this.#enqueue(target.id, target.cause, target.signal, target.network);
  }

  /**
   * A network created or removed is re-listed at once; one a container connects to but that is
   * not known yet (a swarm overlay reaching this worker) before that container is inspected.
   */
  #onNetworkEvent(e: DockerEvent): void {
    const networks = this.#o.networks;
    const action = e.Action ?? '';
    if (!networks || !e.Actor?.ID) return;
    if (action === 'create' || action === 'destroy' || action === 'remove') void networks.refresh().catch((err) => this.#networksFailed(err));
  }

  #networksFailed(err: unknown): void {
    this.#log.warn({ err: errText(err) }, 'could not list Docker networks');
  }

  #enqueue(id: string, cause: UpdateCause, signal?: string, network?: string): Promise<void> {
    return this.#queue.add(
      id,
      async () => {
        const networks = this.#o.networks;
        if (networks && network !== undefined && !networks.has(network)) await networks.refresh().catch((err) => this.#networksFailed(err));
        const inspect = await inspectOrNull(this.#o.docker, id);
        if (!this.#events.stopped) this.#o.onUpdate({ id, cause, ...(signal === undefined ? {} : { signal }), inspect });
      },
      (err) => this.#taskFailed(id, err),
    );
  }

  #taskFailed(id: string, err: unknown): void {
    // The engine went away mid-inspect; the re-list after reconnecting catches up.
    this.#log.warn({ container: id.slice(0, 12), err: errText(err) }, 'could not inspect container');
  }
}

/** Which container an event is about, and why; undefined for events the agent ignores. */
export function eventTarget(e: DockerEvent): { id: string; cause: UpdateCause; signal?: string; network?: string } | undefined {
  const action = (e.Action ?? '').split(':')[0]?.trim() ?? '';
  if (e.Type === 'container' && containerActions.has(action) && e.Actor?.ID) {
    const signal = action === 'kill' ? e.Actor.Attributes?.signal : undefined;
    return { id: e.Actor.ID, cause: action as UpdateCause, ...(signal === undefined ? {} : { signal }) };
  }
  const container = e.Actor?.Attributes?.container;
  if (e.Type === 'network' && (action === 'connect' || action === 'disconnect') && container) {
    return { id: container, cause: action, ...(e.Actor?.ID ? { network: e.Actor.ID } : {}) };
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

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
