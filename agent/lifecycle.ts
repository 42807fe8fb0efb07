import { constants } from 'node:os';
import type { ContainerInspectInfo } from 'dockerode';
import type { ServiceInstance } from '../shared/model.js';
import { dockerCheck, mapContainer, type MapperOptions } from './mapper.js';

/** What made the agent look at a container again. */
export type UpdateCause =
  | 'sync'
  | 'start'
  | 'die'
  | 'stop'
  | 'kill'
  | 'destroy'
  | 'pause'
  | 'unpause'
  | 'rename'
  | 'health_status'
  | 'connect'
  | 'disconnect'
  | 'remap';

export interface ContainerUpdate {
  id: string;
  cause: UpdateCause;
  /** For `kill`: the signal number or name Docker reported. */
  signal?: string;
  /** The container as inspected after the event; null when it no longer exists. */
  inspect: ContainerInspectInfo | null;
}

/** What the agent remembers about one container between updates. */
export interface ContainerRecord {
  inspect: ContainerInspectInfo | null;
  services: ServiceInstance[];
  /** Stop or a terminating kill seen: stays withdrawn while the process winds down. */
  draining: boolean;
}

export interface LifecycleOptions extends MapperOptions {
  deregisterOn: 'stop' | 'die';
  deregister: 'always' | 'on-success';
}

export const emptyRecord: ContainerRecord = { inspect: null, services: [], draining: false };

/**
 * The next state of one container's services. Pure, so every lifecycle rule is
 * testable from captured inspect JSON:
 * - `--deregister-on stop`: `stop` and a terminating `kill` withdraw at once and keep
 *   the container withdrawn until it starts again (clients drain before exit);
 * - a container that is not running has no services, except with `--deregister
 *   on-success`, where one that exited non-zero and not by a signal keeps its last
 *   services with the `docker` check critical;
 * - a paused container keeps its services with the `docker` check critical (mapper).
 */
export function nextRecord(prev: ContainerRecord, u: ContainerUpdate, opts: LifecycleOptions): ContainerRecord {
  const inspect = u.inspect;
  if (!inspect) return emptyRecord;
  const draining = isDrainStart(u, inspect, opts) || (prev.draining && inspect.State?.Running === true && u.cause !== 'start' && sameRun(prev.inspect, inspect));
  if (draining) return { inspect, services: [], draining };
  if (inspect.State?.Running) return { inspect, services: mapContainer(inspect, opts), draining: false };
  return { inspect, services: heldAfterExit(prev.services, inspect, opts), draining: false };
}

/**
 * Still the process that was told to stop. A re-list after the event stream was lost
 * (engine restart) can find the container started again without a `start` event seen.
 */
function sameRun(prev: ContainerInspectInfo | null, next: ContainerInspectInfo): boolean {
  return prev?.State?.StartedAt === next.State?.StartedAt;
}

function isDrainStart(u: ContainerUpdate, inspect: ContainerInspectInfo, opts: LifecycleOptions): boolean {
  if (opts.deregisterOn !== 'stop') return false;
  if (u.cause === 'stop') return true;
  return u.cause === 'kill' && isTerminating(u.signal, stopSignal(inspect));
}

/** Signals that end a process; `docker kill -s HUP` (reload) must not withdraw a service. */
const terminating = new Set(['SIGINT', 'SIGQUIT', 'SIGKILL', 'SIGTERM']);

function isTerminating(signal: string | undefined, stopSignal: string | undefined): boolean {
  if (signal === undefined) return true;
  const name = signalName(signal);
  return terminating.has(name) || (stopSignal !== undefined && signalName(stopSignal) === name);
}

/** Docker reports `15`, `TERM` or `SIGTERM` depending on how the signal was given. */
export function signalName(signal: string): string {
  const n = Number(signal);
  if (Number.isInteger(n)) return Object.entries(constants.signals).find(([, v]) => v === n)?.[0] ?? signal;
  const upper = signal.toUpperCase();
  return upper.startsWith('SIG') ? upper : `SIG${upper}`;
}

/** Config.StopSignal (`STOPSIGNAL` / `--stop-signal`), missing from the dockerode typings. */
function stopSignal(inspect: ContainerInspectInfo): string | undefined {
  return (inspect.Config as { StopSignal?: string } | undefined)?.StopSignal;
}

function heldAfterExit(previous: ServiceInstance[], inspect: ContainerInspectInfo, opts: LifecycleOptions): ServiceInstance[] {
  if (opts.deregister !== 'on-success' || !exitedWithFailure(inspect.State)) return [];
  const check = dockerCheck('critical', `container exited with code ${inspect.State.ExitCode}`);
  return previous.map((s) => ({ ...s, checks: [check, ...s.checks.filter((c) => c.id !== 'docker')] }));
}

/** Non-zero exit not caused by a signal (codes above 128 mean "killed by signal N-128"). */
export function exitedWithFailure(state: ContainerInspectInfo['State'] | undefined): boolean {
  if (!state || state.Running || state.Restarting) return false;
  return state.ExitCode !== 0 && (state.ExitCode & 128) === 0;
}
