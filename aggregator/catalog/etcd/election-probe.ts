import type { Etcd3 } from 'etcd3';
import { createEtcdClient, type ClientOptions } from './connect.js';

/** One member's answer to Maintenance.Status: its ID, the leader it follows ('0': none). */
export interface MemberStatus {
  id: string;
  leader: string;
}

export interface ProbeResult {
  /** Some member answered: etcd is there. */
  reachable: boolean;
  /** The cluster is electing a leader (see clusterElecting). */
  electing: boolean;
  /** The raft term of the leader that answered, if one did (a new leader has a higher term). */
  leaderTerm?: number;
}

/**
 * Is the cluster electing a leader, rather than this process being cut from a leader that is
 * there? Yes when a majority of its members answer, none of them follows a leader that answers
 * too, and one of them has no leader at all (a candidate). Without a leader no lease can lapse,
 * and etcd's new leader extends every lease by its TTL when it takes over (lessor.Promote):
 * an aggregator whose session keepalives go unanswered during an election keeps its session.
 * A member cut off alone (a minority) is not a majority; followers of a live leader that this
 * process cannot reach have a leader, so neither looks like an election.
 */
export function clusterElecting(answers: readonly MemberStatus[], members: number): boolean {
  if (members === 0 || answers.length <= members / 2) return false;
  const answering = new Set(answers.map((a) => a.id));
  if (answers.some((a) => a.leader !== '0' && answering.has(a.leader))) return false;
  return answers.some((a) => a.leader === '0');
}

/**
 * Asks every configured member for its status and the member list, each over its own connection
 * (the store's client picks one member per call) and without etcd's require-leader flag (a member without a
 * leader refuses calls that carry it, and its status is what is asked).
 */
export class ElectionProbe {
  readonly #options: ClientOptions;
  #members: Etcd3[] | undefined;

  constructor(options: ClientOptions) {
    this.#options = options;
  }

  async ask(timeoutMs: number): Promise<ProbeResult> {
    this.#members ??= this.#options.endpoints.map((e) => createEtcdClient({ ...this.#options, endpoints: [e], requireLeader: false }));
    const deadline = Date.now() + timeoutMs;
    // The cluster's size from the members themselves: the configured endpoints may be fewer.
    const answers = await Promise.all(
      this.#members.map(async (m) => {
        const [status, list] = await Promise.allSettled([m.maintenance.status({ deadline }), m.cluster.memberList({}, { deadline })]);
        if (status.status !== 'fulfilled') return undefined;
        const v = status.value;
        return { id: String(v.header.member_id), leader: String(v.leader), term: Number(v.raftTerm), members: list.status === 'fulfilled' ? list.value.members.length : 0 };
      }),
    );
    const answered = answers.filter((a) => a !== undefined);
    (globalThis as any).__dbg = JSON.stringify(answered);
    const members = Math.max(0, ...answered.map((a) => a.members));
    const leader = answered.find((a) => a.leader === a.id);
    return { reachable: answered.length > 0, electing: clusterElecting(answered, members), ...(leader ? { leaderTerm: leader.term } : {}) };
  }

  close(): void {
    for (const m of this.#members ?? []) m.close();
    this.#members = undefined;
  }
}
