import { parseArgs } from 'node:util';
import { defaultCli } from './aggregator-process.js';
import type { FleetShape } from './sim-fleet.js';

type StringOptions = Record<string, { type: 'string'; default?: string }>;

/**
 * The command line shared by the simulated-fleet benchmarks (fleet, reconnect-storm) plus
 * their own options; `pick` gives the full-size or the --smoke figure unless one was given.
 */
export function fleetArgs<O extends StringOptions>(own: O) {
  const { values } = parseArgs({
    options: {
      smoke: { type: 'boolean', default: false },
      hosts: { type: 'string' },
      services: { type: 'string' },
      names: { type: 'string' },
      watchers: { type: 'string' },
      cli: { type: 'string', default: defaultCli },
      seed: { type: 'string', default: '1' },
      ...own,
    },
  });
  const v = values as Record<string, string | boolean | undefined>;
  const smoke = v.smoke === true;
  const pick = (name: string, full: number, small: number): number => (typeof v[name] === 'string' ? Number(v[name]) : smoke ? small : full);
  const shape: FleetShape = { hosts: pick('hosts', 1000, 20), servicesPerHost: pick('services', 50, 5), names: pick('names', 2000, 40) };
  return { smoke, pick, shape, cli: String(v.cli), seed: Number(v.seed), watchers: Math.min(shape.names, pick('watchers', 500, 20)), value: (name: string) => v[name] };
}
