import type { Host } from '../../testbed/index.js';
import { seeded } from '../../support/random.js';
import { runWeb } from './faults.js';

export interface ChurnOptions {
  hosts: readonly Host[];
  /** Container slots, spread over the hosts in turn; slot i publishes basePort + i. */
  containers: number;
  basePort: number;
  durationMs: number;
  /** Docker commands in flight at once (the machine has 2 cores). */
  workers: number;
  seed: number;
}

export interface ChurnResult {
  operations: Record<string, number>;
  errors: string[];
}

type SlotState = 'absent' | 'running' | 'stopped';

interface Slot {
  host: Host;
  name: string;
  port: number;
  state: SlotState;
  busy: boolean;
}

/** The next step for a slot, chosen at random among those its state allows. */
function nextStep(state: SlotState, r: number): { op: string; args?: string[]; then: SlotState } {
  switch (state) {
    case 'absent':
      return { op: 'run', then: 'running' };
    case 'running':
      if (r < 0.5) return { op: 'stop', args: ['stop', '-t', '1'], then: 'stopped' };
      if (r < 0.75) return { op: 'kill', args: ['kill'], then: 'stopped' };
      return { op: 'rm -f', args: ['rm', '-f'], then: 'absent' };
    case 'stopped':
      if (r < 0.6) return { op: 'start', args: ['start'], then: 'running' };
      return { op: 'rm', args: ['rm'], then: 'absent' };
  }
}

/**
 * Starts, stops, kills, restarts and removes containers at random (seeded, so a failure can
 * be replayed) on several hosts for a while, each slot one command at a time.
 */
export async function churn(o: ChurnOptions): Promise<ChurnResult> {
  const random = seeded(o.seed);
  const slots: Slot[] = Array.from({ length: o.containers }, (_, i) => ({
    host: o.hosts[i % o.hosts.length]!,
    name: `churn${i}`,
    port: o.basePort + i,
    state: 'absent',
    busy: false,
  }));
  const result: ChurnResult = { operations: {}, errors: [] };
  const end = performance.now() + o.durationMs;

  const step = async (): Promise<void> => {
    const idle = slots.filter((s) => !s.busy);
    const slot = idle[Math.floor(random() * idle.length)]!;
    const { op, args, then } = nextStep(slot.state, random());
    slot.busy = true;
    try {
      if (args) await slot.host.docker([...args, slot.name]);
      else await runWeb(slot.host, slot.name, slot.port, 'churn');
      slot.state = then;
      result.operations[op] = (result.operations[op] ?? 0) + 1;
    } catch (err) {
      result.errors.push(`${op} ${slot.host.name}/${slot.name}: ${String(err)}`);
    } finally {
      slot.busy = false;
    }
  };

  await Promise.all(
    Array.from({ length: o.workers }, async () => {
      while (performance.now() < end) await step();
    }),
  );
  return result;
}
