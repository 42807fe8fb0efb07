import type { CheckStatus } from '../../shared/model.js';
import { truncateUtf8 } from '../../shared/truncate.js';
import type { CatalogQuery, InstanceView } from '../catalog/query.js';
import { LaterTopics } from './later-topics.js';
import { Ring } from './ring.js';

/**
 * The UI's per-instance history: each instance's worst-status changes as this aggregator saw
 * them (the first when it first saw the instance), and the count of instances by status.
 * Changed services are read in a later turn (LaterTopics), so changes within one turn are read
 * as one, as a replica fed in batches (etcd) sees them anyway. A view is replaced whenever its
 * instance or node changes, so an instance whose view is the one seen before costs a compare.
 */

export interface StatusChange {
  /** ms since epoch. */
  t: number;
  status: CheckStatus;
  /** The output of the check that made the status (clipped to OUTPUT_BYTES). */
  output: string;
}

export type StatusCounts = Record<CheckStatus, number>;

export interface StatusHistoryOptions {
  now?: () => number;
  /** Changes kept per instance (default 20). */
  perInstance?: number;
  /** How long a removed instance's history is kept (default one hour). */
  keepGoneMs?: number;
  /** Most removed instances whose history is kept; the oldest removed are dropped first (default 1,000). */
  maxGone?: number;
}

/** A check's output is up to 4,096 characters; the history keeps the start of it, as a UI line shows. */
export const OUTPUT_BYTES = 256;

interface Tracked {
  key: string;
  /** Lower-case service name: the index it sits in. */
  name: string;
  /** The view last seen; undefined once gone from the catalog. */
  view: InstanceView | undefined;
  changes: Ring<StatusChange>;
  /** The scan that last saw it. */
  seen: number;
}

export class StatusHistory {
  readonly #query: CatalogQuery;
  readonly #now: () => number;
  readonly #perInstance: number;
  readonly #keepGoneMs: number;
  readonly #maxGone: number;
  /** `<node>/<serviceID>` → its history. */
  readonly #byKey = new Map<string, Tracked>();
  /** Lower-case service name → the keys of its instances, present and gone. */
  readonly #byName = new Map<string, Set<string>>();
  /** Key → when it left the catalog, oldest first (a key coming back is deleted and re-added when it goes again). */
  readonly #gone = new Map<string, number>();
  readonly #counts: StatusCounts = { passing: 0, warning: 0, critical: 0 };
  readonly #changes: LaterTopics;
  #scan = 0;

  constructor(query: CatalogQuery, options: StatusHistoryOptions = {}) {
    this.#query = query;
    this.#now = options.now ?? Date.now;
    this.#perInstance = options.perInstance ?? 20;
    this.#keepGoneMs = options.keepGoneMs ?? 3_600_000;
    this.#maxGone = options.maxGone ?? 1000;
    // A store that filled before (etcd) holds instances no change will announce.
    for (const name of query.serviceNames().keys()) this.#scanName(name.toLowerCase());
    this.#changes = new LaterTopics(query, 'service/', (names) => {
      for (const name of names) this.#scanName(name);
    });
  }

  /** Instances by worst status, as of now (pending changes are read first). */
  counts(): Readonly<StatusCounts> {
    this.flush();
    return { ...this.#counts };
  }

  /** The service's instances (case-insensitive name), present and recently removed, each oldest first. */
  instances(name: string): Record<string, StatusChange[]> {
    this.flush();
    const out: Record<string, StatusChange[]> = {};
    for (const key of [...(this.#byName.get(name.toLowerCase()) ?? [])].sort()) out[key] = this.#byKey.get(key)!.changes.toArray();
    return out;
  }

  /** Instances whose history is kept (present and recently removed). */
  get size(): number {
    return this.#byKey.size;
  }

  /** Reads the queued changes now, and forgets removed instances past their time. */
  flush(): void {
    this.#changes.flush();
    this.#dropOldGone();
  }

  close(): void {
    this.#changes.close();
  }

  /** Compares a service's instances with what was seen; those not among them have left. */
  #scanName(name: string): void {
    const scan = ++this.#scan;
    const now = this.#now();
    for (const view of this.#query.instances(name)) this.#see(name, view, scan, now);
    const keys = this.#byName.get(name);
    if (!keys) return;
    for (const key of keys) {
      const t = this.#byKey.get(key)!;
      if (t.seen !== scan && t.view) this.#leave(t, now);
    }
  }

  #see(name: string, view: InstanceView, scan: number, now: number): void {
    const key = `${view.node.name}/${view.service.id}`;
    let t = this.#byKey.get(key);
    if (!t) {
      t = { key, name, view: undefined, changes: new Ring(this.#perInstance), seen: scan };
      this.#byKey.set(key, t);
      this.#index(name, key);
    } else if (t.name !== name) {
      // Renamed: its history follows it to the new name.
      this.#unindex(t.name, key);
      t.name = name;
      this.#index(name, key);
    }
    t.seen = scan;
    if (t.view === view) return;
    const before = t.view?.status;
    if (t.view) this.#counts[t.view.status]--;
    else this.#gone.delete(key);
    t.view = view;
    this.#counts[view.status]++;
    if (before === view.status || (before === undefined && t.changes.last()?.status === view.status)) return;
    t.changes.push({ t: now, status: view.status, output: truncateUtf8(worstOutput(view), OUTPUT_BYTES) });
  }

  #leave(t: Tracked, now: number): void {
    this.#counts[t.view!.status]--;
    t.view = undefined;
    this.#gone.set(t.key, now);
  }

  #dropOldGone(): void {
    const oldest = this.#now() - this.#keepGoneMs;
    for (const [key, goneAt] of this.#gone) {
      if (this.#gone.size <= this.#maxGone && goneAt >= oldest) break;
      this.#gone.delete(key);
      this.#unindex(this.#byKey.get(key)!.name, key);
      this.#byKey.delete(key);
    }
  }

  #index(name: string, key: string): void {
    let keys = this.#byName.get(name);
    if (!keys) this.#byName.set(name, (keys = new Set()));
    keys.add(key);
  }

  #unindex(name: string, key: string): void {
    const keys = this.#byName.get(name);
    if (keys?.delete(key) && keys.size === 0) this.#byName.delete(name);
  }
}

/**
 * The output of a check at the instance's status: its own checks first (a passing instance
 * shows its probe's answer), then its node's (serfHealth's reason when the host is down).
 */
function worstOutput(view: InstanceView): string {
  for (const c of view.checks) if (c.status === view.status) return c.output;
  for (const c of view.node.checks) if (c.status === view.status) return c.output;
  return '';
}
