#!/usr/bin/env node
import type { Logger } from 'pino';
import type { AggregatorOptions } from '../aggregator/server.js';
import type { AgentOptions } from '../agent/options.js';
import { VERSION } from '../shared/version.js';
import { aggregatorFlags, aggregatorOptions } from './aggregator-command.js';
import { agentFlags, agentOptions } from './agent-command.js';
import { logFlags, logFormat } from './common-flags.js';
import type { Output } from './api-client.js';
import { catalogNodes, catalogNodesFlags, catalogServices, catalogServicesFlags, members, membersFlags } from './catalog-commands.js';
import { maint, maintFlags, services, servicesFlags } from './local-api-commands.js';
import { parseFlags, usage, UsageError, type FlagSpec, type FlagValue } from './flags.js';
import { createLogger, type LogFormat } from './logger.js';
import { tuneForAgent, tuneForAggregator } from './v8-tuning.js';

interface Running {
  close(): Promise<void>;
  /** What SIGHUP does, when the command has anything to re-read. */
  reload?: () => void;
}

/** A role runs until a signal; a client command (maint, members, …) does its calls, prints and exits. */
type Command = { summary: string; flags: FlagSpec[] } & (
  | { run(values: Record<string, FlagValue>, logger: Logger): Promise<Running> }
  | { once(values: Record<string, FlagValue>, io: Output): Promise<number> }
);

const stdio: Output = { out: (text) => void process.stdout.write(text), err: (text) => void process.stderr.write(text) };

/** Where option parsing reports what is wrong but not fatal (a token file others can read). */
const warnTo = (logger: Logger) => (fields: Record<string, unknown>, msg: string) => logger.warn(fields, msg);

const devAgentFlags = agentFlags.filter((f) => f.name !== 'aggregator' && !aggregatorFlags.some((a) => a.name === f.name));

const commands: Record<string, Command> = {
  aggregator: {
    summary: 'Merge every agent\'s services into one catalog; serve it over Consul-compatible HTTP and DNS.',
    flags: [...aggregatorFlags, ...logFlags],
    run: async (v, logger) => runAggregator(aggregatorOptions(v, warnTo(logger)), logger),
  },
  agent: {
    summary: 'Watch the local Docker engine and push its services to an aggregator.',
    flags: [...agentFlags, ...logFlags],
    run: async (v, logger) => {
      const options = agentOptions(v);
      tuneForAgent({ localDns: options.localDns !== undefined });
      return runAgent(options, logger);
    },
  },
  dev: {
    summary: 'Aggregator and an agent on the local engine in one process (for trying portolan on one machine).',
    flags: [...aggregatorFlags, ...devAgentFlags, ...logFlags],
    run: async (v, logger) => {
      const agg = await runAggregator(aggregatorOptions(v, warnTo(logger)), logger);
      const aggregator = `ws://127.0.0.1:${agg.httpPort}`;
      // --tls-cert/--tls-key are the aggregator's here: the agent reaches it over ws:// on loopback.
      const agent = await runAgent(agentOptions({ ...v, aggregator, 'tls-cert': undefined, 'tls-key': undefined }), logger);
      return {
        ...(agg.reload ? { reload: agg.reload } : {}),
        async close() {
          await agent.close();
          await agg.close();
        },
      };
    },
  },
  maint: {
    summary: "Show, enter or leave maintenance mode of this host or one of its services, through the agent's local API.",
    flags: maintFlags,
    once: maint,
  },
  services: {
    summary: "List the catalog's services (of every host, or of --node), through the agent's local API.",
    flags: servicesFlags,
    once: services,
  },
  members: {
    summary: "List the hosts (each agent's node) and the aggregator, with address, status and version, as consul members.",
    flags: membersFlags,
    once: members,
  },
  'catalog services': {
    summary: "List the catalog's services through an aggregator's HTTP API, as consul catalog services.",
    flags: catalogServicesFlags,
    once: catalogServices,
  },
  'catalog nodes': {
    summary: "List the catalog's nodes through an aggregator's HTTP API, as consul catalog nodes.",
    flags: catalogNodesFlags,
    once: catalogNodes,
  },
};

/** The command argv names (`catalog services` is two words), and the arguments after it. */
function findCommand(argv: string[]): { name: string; command: Command | undefined; rest: string[] } {
  const two = argv.slice(0, 2).join(' ');
  if (commands[two]) return { name: two, command: commands[two], rest: argv.slice(2) };
  return { name: argv[0]!, command: commands[argv[0]!], rest: argv.slice(1) };
}

// Each role loads only its own code: an agent has no use for fastify, dns2 or prom-client,
// and they would add tens of MB to every Docker host's agent.
async function runAggregator(options: AggregatorOptions, logger: Logger): Promise<Running & { httpPort: number }> {
  tuneForAggregator();
  const { startAggregator } = await import('../aggregator/server.js');
  const running = await startAggregator(options, logger);
  const reloadTokens = running.reloadAgentTokens;
  return reloadTokens ? { ...running, reload: () => void reloadTokens() } : running;
}

async function runAgent(options: AgentOptions, logger: Logger): Promise<Running> {
  const { startAgent } = await import('../agent/agent.js');
  const agent = await startAgent(options, logger);
  return { close: () => agent.stop() };
}

function topUsage(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(18)} ${c.summary}`);
  return `portolan ${VERSION}: service discovery for Docker containers across many hosts\n\nUsage: portolan <command> [flags]\n\nCommands:\n${rows.join('\n')}\n\nRun "portolan <command> --help" for its flags.\n`;
}

async function main(argv: string[]): Promise<number> {
  const first = argv[0];
  if (!first || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(topUsage());
    return first ? 0 : 2;
  }
  if (first === '--version' || first === 'version') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const { name, command, rest } = findCommand(argv);
  if (!command) {
    process.stderr.write(`portolan: unknown command "${name}"\n\n${topUsage()}`);
    return 2;
  }
  let parsed: ReturnType<typeof parseFlags>;
  try {
    parsed = parseFlags(command.flags, rest, process.env);
  } catch (err) {
    return usageFailure(name, command, err);
  }
  if (parsed.help) {
    process.stdout.write(usage(name, command.summary, command.flags));
    return 0;
  }
  if ('once' in command) return runOnce(name, command, parsed.values);
  let format: LogFormat;
  try {
    format = logFormat(parsed.values, process.stderr.isTTY === true);
  } catch (err) {
    return usageFailure(name, command, err);
  }
  const logger = await createLogger(parsed.values['log-level'] as string, format);
  let running: Running;
  try {
    running = await command.run(parsed.values, logger);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`portolan ${name}: ${err.message}\n`);
      return 2;
    }
    logger.fatal({ err }, `portolan ${name} failed to start`);
    return 1;
  }
  return waitForSignal(running, logger);
}

/** A flag's value is wrong: what, then the command's flags; exit 2. */
function usageFailure(name: string, command: Command, err: unknown): number {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`portolan ${name}: ${err.message}\n\n${usage(name, command.summary, command.flags)}`);
  return 2;
}

async function runOnce(name: string, command: Extract<Command, { once: unknown }>, values: Record<string, FlagValue>): Promise<number> {
  try {
    return await command.once(values, stdio);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`portolan ${name}: ${err.message}\n`);
    return 2;
  }
}

/** Resolves with the exit code after SIGTERM/SIGINT and a graceful close (a second signal forces it). */
function waitForSignal(running: Running, logger: Logger): Promise<number> {
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      process.once('SIGTERM', () => resolve(1));
      process.once('SIGINT', () => resolve(1));
      running.close().then(
        () => resolve(0),
        (err: unknown) => {
          logger.error({ err }, 'error while shutting down');
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // Only a command with something to re-read takes SIGHUP; the others keep its default (exit).
    const reload = running.reload;
    if (reload) {
      process.on('SIGHUP', () => {
        logger.info({ signal: 'SIGHUP' }, 'reloading');
        reload();
      });
    }
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`portolan: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
