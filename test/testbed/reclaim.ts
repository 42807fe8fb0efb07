/**
 * Removes what testbed runs left behind (their processes, by recorded PID or namespace, mounts,
 * namespaces, links, iptables rules, cgroups, files) and prints each slot it cleaned.
 *   node --import tsx test/testbed/reclaim.ts           every slot whose owner process is gone
 *   node --import tsx test/testbed/reclaim.ts --slot N  slot N, owner or not (a run exiting abruptly)
 */
import { parseArgs } from 'node:util';
import { reclaimStaleSlots, releaseSlot } from './slot.js';

async function releaseOne(slot: number): Promise<number[]> {
  await releaseSlot(slot);
  return [slot];
}

const { values } = parseArgs({ options: { slot: { type: 'string' } } });
const slots = values.slot === undefined ? await reclaimStaleSlots() : await releaseOne(Number(values.slot));
for (const slot of slots) console.log(`reclaimed testbed slot ${slot} (ptl${slot}*)`);
