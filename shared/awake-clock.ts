/**
 * A clock for judging a peer's silence that stops while this process itself is not running on
 * time: stopped (SIGSTOP), or its event loop held by a long synchronous task. Meanwhile the
 * peer may well have answered, but nothing was read; counted on this clock, that pause is
 * never the peer's silence, however long it lasts.
 *
 * The owner calls `tick()` every `tickMs`. Past the moment the next tick was due the clock
 * stands still, and the tick that comes late drops the lateness for good; so the clock never
 * goes backwards and never counts a pause, even before the late tick has run.
 */
export class AwakeClock {
  readonly #tickMs: number;
  readonly #wall: () => number;
  #lastTick: number;
  #paused = 0;

  constructor(tickMs: number, wall: () => number = () => performance.now()) {
    this.#tickMs = tickMs;
    this.#wall = wall;
    this.#lastTick = wall();
  }

  /** Records a tick; returns how late it came (ms), the length of this process's own pause. */
  tick(): number {
    const wall = this.#wall();
    const late = Math.max(0, wall - this.#lastTick - this.#tickMs);
    this.#paused += late;
    this.#lastTick = wall;
    return late;
  }

  /** ms of running time since an arbitrary origin. */
  now(): number {
    return Math.min(this.#wall(), this.#lastTick + this.#tickMs) - this.#paused;
  }
}
