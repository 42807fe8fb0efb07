import type { BlockList } from 'node:net';
import { parseAllowList } from '../shared/dns/allow.js';
import { UsageError, type FlagSpec, type FlagValue } from './flags.js';

export const logFlags: FlagSpec[] = [
  { name: 'log-level', kind: 'string', env: 'PORTOLAN_LOG_LEVEL', default: 'info', help: 'log level', choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] },
  { name: 'log-pretty', kind: 'boolean', env: 'PORTOLAN_LOG_PRETTY', default: 'false', help: 'human-readable logs instead of JSON' },
];

export const tokenFlag: FlagSpec = {
  name: 'token',
  kind: 'string',
  env: 'PORTOLAN_TOKEN',
  help: "sent to the aggregator as Authorization: Bearer: its --token, or this node's token from its --agent-tokens file",
};

export const dnsAllowFlag: FlagSpec = {
  name: 'dns-allow',
  kind: 'list',
  env: 'PORTOLAN_DNS_ALLOW',
  help: 'answer DNS only to askers in these networks (CIDR or address); the others get REFUSED (default: everyone)',
};

export function dnsAllowList(v: Record<string, FlagValue>): BlockList | undefined {
  const entries = v['dns-allow'] as string[] | undefined;
  if (entries === undefined || entries.length === 0) return undefined;
  try {
    return parseAllowList(entries);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
