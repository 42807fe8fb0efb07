import type { BlockList } from 'node:net';
import { parseAllowList } from '../shared/dns/allow.js';
import { UsageError, type FlagSpec, type FlagValue } from './flags.js';
import { chooseLogFormat, type LogFormat } from './logger.js';

export const logFlags: FlagSpec[] = [
  { name: 'log-level', kind: 'string', env: 'PORTOLAN_LOG_LEVEL', default: 'info', help: 'log level', choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] },
  { name: 'log-format', kind: 'string', env: 'PORTOLAN_LOG_FORMAT', default: 'auto', help: 'pretty: readable lines; json: one JSON object a line; auto: pretty when stderr is a terminal, else json', choices: ['auto', 'pretty', 'json'] },
  { name: 'log-pretty', kind: 'boolean', env: 'PORTOLAN_LOG_PRETTY', default: 'false', help: 'the same as --log-format pretty (its older spelling)' },
];

/** The log format the flags and the terminal call for; contradicting flags are a usage error. */
export function logFormat(v: Record<string, FlagValue>, stderrIsTerminal: boolean): LogFormat {
  const flag = v['log-format'] as 'auto' | LogFormat;
  const legacyPretty = v['log-pretty'] as boolean;
  if (flag === 'json' && legacyPretty) throw new UsageError('--log-pretty means --log-format pretty, but --log-format is json');
  return chooseLogFormat(flag, legacyPretty, stderrIsTerminal);
}

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
