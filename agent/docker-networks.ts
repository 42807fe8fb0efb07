import type Docker from 'dockerode';
import { isDeepStrictEqual } from 'node:util';
import { networkFactsById, type NetworkFacts } from './network-reach.js';

/**
 * The engine's networks as the mapper reads them (network-reach.ts), re-listed at every
 * container re-list and whenever a network event names one it does not know (a swarm
 * overlay appears on a worker only once a container there attaches to it).
 */
export class DockerNetworks {
  readonly #docker: Docker;
  readonly #onChange: () => void;
  #facts: ReadonlyMap<string, NetworkFacts> = new Map();
  /** Re-lists run one at a time; one asked for meanwhile runs once after (all askers wait for it). */
  #running: Promise<void> | undefined;
  #next: Promise<void> | undefined;

  /** `onChange`: what some network ID means changed (a network appeared or went). */
  constructor(docker: Docker, onChange: () => void) {
    this.#docker = docker;
    this.#onChange = onChange;
  }

  get facts(): ReadonlyMap<string, NetworkFacts> {
    return this.#facts;
  }

  has(id: string): boolean {
    return this.#facts.has(id);
  }

  refresh(): Promise<void> {
    if (!this.#running) {
      this.#running = this.#list().finally(() => (this.#running = undefined));
      return this.#running;
    }
    this.#next ??= this.#running.catch(() => undefined).then(() => ((this.#next = undefined), this.refresh()));
    return this.#next;
  }

  async #list(): Promise<void> {
    const next = networkFactsById(await this.#docker.listNetworks());
    if (isDeepStrictEqual(next, this.#facts)) return;
    this.#facts = next;
    this.#onChange();
  }
}
