/**
 * The guardian of one testbed slot (see guardian.ts): `guardian-main.ts <owner pid> <slot>`.
 * Waits until the owner process has ended, then removes whatever of the slot is left.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive } from './processes.js';
import { releaseSlot, slotOwnedBy } from './slot.js';

const POLL_MS = 250;
const [owner, slot] = process.argv.slice(2).map(Number);
if (owner === undefined || slot === undefined || !Number.isInteger(owner) || !Number.isInteger(slot)) {
  throw new Error('usage: guardian-main.ts <owner pid> <slot>');
}
while (await isAlive(owner)) await sleep(POLL_MS);
if (await slotOwnedBy(slot, owner)) await releaseSlot(slot);
