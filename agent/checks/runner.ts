import type { Logger } from 'pino';
import type { ServiceInstance } from '../../shared/model.js';
import { ConcurrencyLimit } from './concurrency-limit.js';
import { checkDefinitions, checkState, type ProbeDefinition } from './definitions.js';
import { runProbe, type ProbeResult } from './probes.js';

export interface CheckRunnerOptions {
  /** A container's check results changed: the caller re-reads its services through reconcile(). */
  onChange: (containerId: string) => void;
  logger: Logger;
  /** Probes in flight at once, over all containers. */
  maxConcurrent?: number;
  random?: () => number;
}

/** One check of one service and its latest result. */
interface Slot {
  fingerprint: string;
  probe: ProbeDefinition;
  result: ProbeResult;
  /** SERVICE_CHECK_DEREGISTER_AFTER ran out while critical: the service is withdrawn until this check leaves critical. */
  withdrawn: boolean;
  /** Bumped whenever the probe loop stops, so a probe in flight from an old loop is ignored. */
  generation: number;
  running: boolean;
  timer: NodeJS.Timeout | undefined;
  deregisterTimer: NodeJS.Timeout | undefined;
}

interface ContainerChecks {
  /** The container's start time; a new one (restart) resets every check to its initial status. */
  incarnation: string | null;
  slots: Map<string, Slot>;
}

/** The first probe comes within this long of a check appearing (with jitter), not a whole interval later. */
const firstProbeWithinMs = 1000;
const initialOutput = 'not checked yet';

/**
 * Runs the HTTP/HTTPS/TCP checks the mapper declares. The mapper stays pure and always emits
 * checks at their initial status; reconcile() overlays the latest results. Results live
 * here, keyed by container, service, check and the check's definition, so a re-list or resync
 * that maps the same container again keeps them; a restart or a changed definition resets them.
 */
export class CheckRunner {
  readonly #o: CheckRunnerOptions;
  readonly #limit: ConcurrencyLimit;
  readonly #random: () => number;
  readonly #containers = new Map<string, ContainerChecks>();

  constructor(opts: CheckRunnerOptions) {
    this.#o = opts;
    this.#limit = new ConcurrencyLimit(opts.maxConcurrent ?? 16);
    this.#random = opts.random ?? Math.random;
  }

  /**
   * The container's services with current check results, minus those withdrawn by
   * SERVICE_CHECK_DEREGISTER_AFTER. `incarnation` null (not running): probes pause, results stay.
   */
  reconcile(containerId: string, incarnation: string | null, services: readonly ServiceInstance[]): ServiceInstance[] {
    if (services.length === 0) {
      this.#forget(containerId);
      return [];
    }
    const known = this.#containers.get(containerId);
    if (known && incarnation !== null && known.incarnation !== incarnation) this.#forget(containerId);
    const entry = this.#containers.get(containerId) ?? { incarnation, slots: new Map<string, Slot>() };
    entry.incarnation = incarnation;
    this.#containers.set(containerId, entry);
    const wanted = new Set<string>();
    for (const s of services) {
      for (const d of checkDefinitions(s)) {
        if (!d.ok) continue;
        const key = slotKey(s.id, d.probe.id);
        wanted.add(key);
        const slot = this.#slot(containerId, entry, key, d.probe);
        if (incarnation === null) this.#halt(slot);
        else this.#resume(containerId, slot);
      }
    }
    for (const [key, slot] of entry.slots) if (!wanted.has(key)) this.#drop(entry, key, slot);
    return services.filter((s) => !this.#withdrawn(entry, s)).map((s) => withResults(entry, s));
  }

  /** Stops every probe; results are forgotten. */
  stop(): void {
    for (const id of [...this.#containers.keys()]) this.#forget(id);
  }

  #slot(containerId: string, entry: ContainerChecks, key: string, probe: ProbeDefinition): Slot {
    const fingerprint = JSON.stringify(probe);
    const existing = entry.slots.get(key);
    if (existing?.fingerprint === fingerprint) return existing;
    if (existing) this.#drop(entry, key, existing);
    const slot: Slot = {
      fingerprint,
      probe,
      result: { status: probe.initialStatus, output: initialOutput },
      withdrawn: false,
      generation: 0,
      running: false,
      timer: undefined,
      deregisterTimer: undefined,
    };
    this.#trackCritical(containerId, slot);
    entry.slots.set(key, slot);
    return slot;
  }

  #resume(containerId: string, slot: Slot): void {
    if (slot.running) return;
    slot.running = true;
    this.#schedule(containerId, slot, this.#random() * Math.min(slot.probe.intervalMs, firstProbeWithinMs));
  }

  #schedule(containerId: string, slot: Slot, delayMs: number): void {
    const generation = slot.generation;
    slot.timer = setTimeout(() => void this.#probe(containerId, slot, generation), delayMs);
  }

  async #probe(containerId: string, slot: Slot, generation: number): Promise<void> {
    const started = Date.now();
    const result = await this.#limit.run(async () => (slot.generation === generation ? runProbe(slot.probe) : undefined));
    if (!result || slot.generation !== generation) return;
    this.#record(containerId, slot, result);
    // ±5 % jitter keeps checks that started together from probing in lockstep forever.
    const next = slot.probe.intervalMs * (0.95 + 0.1 * this.#random());
    this.#schedule(containerId, slot, Math.max(0, started + next - Date.now()));
  }

  /** Reports a result only when status or output changed: one delta per real change. */
  #record(containerId: string, slot: Slot, result: ProbeResult): void {
    const before = slot.result;
    if (before.status === result.status && before.output === result.output) return;
    slot.result = result;
    if (before.status !== result.status) {
      this.#o.logger.info({ container: containerId.slice(0, 12), check: slot.probe.id, from: before.status, to: result.status, output: result.output }, `check ${result.status}`);
    }
    this.#trackCritical(containerId, slot);
    this.#o.onChange(containerId);
  }

  /** Starts or stops the SERVICE_CHECK_DEREGISTER_AFTER clock as the check enters or leaves critical. */
  #trackCritical(containerId: string, slot: Slot): void {
    if (slot.result.status !== 'critical') {
      clearTimeout(slot.deregisterTimer);
      slot.deregisterTimer = undefined;
      slot.withdrawn = false;
      return;
    }
    const after = slot.probe.deregisterAfterMs;
    if (slot.deregisterTimer !== undefined || slot.withdrawn || after === undefined) return;
    slot.deregisterTimer = setTimeout(() => {
      slot.deregisterTimer = undefined;
      slot.withdrawn = true;
      this.#o.onChange(containerId);
    }, after);
  }

  #withdrawn(entry: ContainerChecks, s: ServiceInstance): boolean {
    return s.checks.some((c) => entry.slots.get(slotKey(s.id, c.id))?.withdrawn === true);
  }

  #halt(slot: Slot): void {
    slot.generation++;
    slot.running = false;
    clearTimeout(slot.timer);
  }

  #drop(entry: ContainerChecks, key: string, slot: Slot): void {
    this.#halt(slot);
    clearTimeout(slot.deregisterTimer);
    entry.slots.delete(key);
  }

  #forget(containerId: string): void {
    const entry = this.#containers.get(containerId);
    if (!entry) return;
    for (const [key, slot] of entry.slots) this.#drop(entry, key, slot);
    this.#containers.delete(containerId);
  }
}

function slotKey(serviceId: string, checkId: string): string {
  return `${serviceId}\0${checkId}`;
}

function withResults(entry: ContainerChecks, s: ServiceInstance): ServiceInstance {
  return {
    ...s,
    checks: s.checks.map((c) => {
      const slot = entry.slots.get(slotKey(s.id, c.id));
      return slot ? checkState(slot.probe, slot.result.status, slot.result.output) : c;
    }),
  };
}
