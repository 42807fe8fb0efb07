import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AwakeClock } from '../../shared/awake-clock.js';

test('the awake clock runs with the wall clock while ticks come on time', () => {
  let wall = 1000;
  const clock = new AwakeClock(250, () => wall);
  const start = clock.now();
  for (let i = 0; i < 4; i++) {
    wall += 250;
    assert.equal(clock.tick(), 0);
  }
  assert.equal(clock.now() - start, 1000);
});

test('a pause of the process (a late tick) is left out, and the clock stands still until that tick runs', () => {
  let wall = 0;
  const clock = new AwakeClock(250, () => wall);
  wall = 200;
  assert.equal(clock.now(), 200);
  // Stopped for 10 s: before the late tick has run (a frame read first), the clock has stopped
  // where the tick was due…
  wall = 10_250;
  assert.equal(clock.now(), 250);
  // …and the late tick drops the pause for good: no jump forward, no going back.
  assert.equal(clock.tick(), 10_000);
  assert.equal(clock.now(), 250);
  wall += 250;
  clock.tick();
  assert.equal(clock.now(), 500);
});
