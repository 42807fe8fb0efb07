import type { FlagSpec } from './flags.js';

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
