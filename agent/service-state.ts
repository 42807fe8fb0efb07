import { isDeepStrictEqual } from 'node:util';
import type { ServiceInstance } from '../shared/model.js';

export interface ServiceDelta {
  upsert: ServiceInstance[];
  remove: string[];
}

/**
 * The services this host should have in the catalog (container id → services), and
 * what was last sent, so that only real changes travel: a resync that finds nothing
 * new produces no delta.
 */
export class ServiceState {
  readonly #byContainer = new Map<string, readonly ServiceInstance[]>();
  readonly #overlay: (s: ServiceInstance) => ServiceInstance;
  /** service id → instance, as the aggregator has it after our last snapshot/delta. */
  #sent = new Map<string, ServiceInstance>();

  /** `overlay` adds to any service what was set beside Docker (the local API's checks and maintenance). */
  constructor(overlay: (s: ServiceInstance) => ServiceInstance = (s) => s) {
    this.#overlay = overlay;
  }

  set(containerId: string, services: readonly ServiceInstance[]): void {
    if (services.length === 0) this.#byContainer.delete(containerId);
    else this.#byContainer.set(containerId, services);
  }

  /**
   * Every desired service, one per id. Two containers claiming one id (a shared
   * SERVICE_ID) cannot both be in the catalog: the container whose id sorts first wins (the
   * local API's services, under the key '', before any).
   */
  desired(): Map<string, ServiceInstance> {
    const out = new Map<string, ServiceInstance>();
    const ids = [...this.#byContainer.keys()].sort();
    for (const id of ids) for (const s of this.#byContainer.get(id) ?? []) if (!out.has(s.id)) out.set(s.id, this.#overlay(s));
    return out;
  }

  /** All desired services; from now on deltas are relative to this. */
  snapshot(): ServiceInstance[] {
    this.#sent = this.desired();
    return [...this.#sent.values()];
  }

  /** The change since the last snapshot/delta, or null when there is none. */
  delta(): ServiceDelta | null {
    const next = this.desired();
    const upsert = [...next.values()].filter((s) => !isDeepStrictEqual(this.#sent.get(s.id), s));
    const remove = [...this.#sent.keys()].filter((id) => !next.has(id));
    this.#sent = next;
    return upsert.length === 0 && remove.length === 0 ? null : { upsert, remove };
  }
}
