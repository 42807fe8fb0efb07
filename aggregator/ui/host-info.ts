import type { CatalogQuery, NodeView } from '../catalog/query.js';
import { LaterTopics } from './later-topics.js';

/**
 * The UI's host view: what the node's agent registered (engine, OS, agent version), and its
 * connection as this aggregator knows it: since when it is up, when it was lost and when it
 * will be reaped. Lost and up times are when this aggregator saw the node's health change
 * (first sight counts, after a start); the connection's own start when it is held here.
 */

export interface HostJson {
  Node: string;
  External: boolean;
  AgentVersion: string;
  EngineVersion: string;
  OS: string;
  Arch: string;
  Kernel: string;
  Connected: boolean;
  ConnectedSince: number | null;
  LastSeen: number | null;
  LostAt: number | null;
  ReapAt: number | null;
  Holder: string;
  Protocol: number | null;
}

interface Seen {
  connected: boolean;
  /** When this aggregator saw it up (null while down). */
  upSince: number | null;
  /** When this aggregator saw it go down (null while up). */
  lostAt: number | null;
}

/** When each node's health was seen to change; a node gone from the catalog is forgotten. */
export class HostStates {
  readonly #query: CatalogQuery;
  readonly #now: () => number;
  readonly #nodes = new Map<string, Seen>();
  readonly #changes: LaterTopics;

  constructor(query: CatalogQuery, now: () => number = Date.now) {
    this.#query = query;
    this.#now = now;
    for (const node of query.nodes()) this.#see(node.name);
    this.#changes = new LaterTopics(query, 'node/', (names) => {
      for (const name of names) this.#see(name);
    });
  }

  get(name: string): Readonly<Seen> | undefined {
    this.#changes.flush();
    return this.#nodes.get(name);
  }

  close(): void {
    this.#changes.close();
  }

  #see(name: string): void {
    const node = this.#query.node(name);
    if (!node) {
      this.#nodes.delete(name);
      return;
    }
    const seen = this.#nodes.get(name);
    if (seen?.connected === node.connected || node.external) {
      if (!seen) this.#nodes.set(name, { connected: node.connected, upSince: null, lostAt: null });
      return;
    }
    const now = this.#now();
    this.#nodes.set(name, node.connected ? { connected: true, upSince: now, lostAt: null } : { connected: false, upSince: null, lostAt: now });
  }
}

export interface HostSources {
  query: CatalogQuery;
  states: HostStates;
  /** The agent connection holding the node here, if any. */
  connection(node: string): { since: number; protocol: number } | undefined;
  reapAfterMs: number;
}

/** The host view of a node; undefined when the catalog has no such node. */
export function hostJson(name: string, sources: HostSources): HostJson | undefined {
  const node = sources.query.node(name);
  if (!node) return undefined;
  const seen = sources.states.get(name);
  const here = sources.connection(name);
  const lostAt = node.connected || node.external ? null : (seen?.lostAt ?? null);
  return {
    Node: node.name,
    External: node.external,
    ...registered(node),
    Connected: node.connected,
    ConnectedSince: node.connected ? (here?.since ?? seen?.upSince ?? null) : null,
    LastSeen: node.external ? null : node.lastSeen,
    LostAt: lostAt,
    ReapAt: lostAt === null ? null : lostAt + sources.reapAfterMs,
    Holder: node.holder,
    Protocol: here?.protocol ?? null,
  };
}

/** What the agent put in the node's meta (agent/agent.ts describeEngine); '' for what it could not read. */
function registered(node: NodeView): Pick<HostJson, 'AgentVersion' | 'EngineVersion' | 'OS' | 'Arch' | 'Kernel'> {
  const m = node.meta;
  return {
    AgentVersion: m['portolan-agent-version'] ?? '',
    EngineVersion: m['docker-version'] ?? '',
    OS: m.os ?? '',
    Arch: m.arch ?? '',
    Kernel: m.kernel ?? '',
  };
}
