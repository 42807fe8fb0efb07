import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { until } from '../support/until.js';
import { cliCommand, runCli } from './support/cli.js';

/** util-linux's script (Debian's bsdutils, an Essential package): runs a command on a new pseudo-terminal. */
const SCRIPT = '/usr/bin/script';
const AGGREGATOR = ['aggregator', '--http', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--name', 'log-test'];

const shellQuote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
const plain = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, '').replace(/\r/g, '');
/** pino-pretty's line: `[HH:MM:SS.mmm] LEVEL: message {fields}`. */
const PRETTY_LINE = /^\[\d\d:\d\d:\d\d\.\d{3}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL): \S/;

/**
 * The CLI on a pseudo-terminal, as when a person runs it in a terminal: stderr and stdout are
 * the terminal, whose output `script` copies to its stdout. Ctrl-C typed on it stops the CLI.
 */
function onTerminal(args: string[], env: NodeJS.ProcessEnv = {}) {
  // script runs the command with $SHELL -c; exec makes the CLI the terminal's foreground process
  // whatever that shell is (dash, CI's /bin/sh, would otherwise take the Ctrl-C too and exit 130).
  const command = `exec ${[...cliCommand(), ...args].map(shellQuote).join(' ')}`;
  const child = spawn(SCRIPT, ['-qfec', command, '/dev/null'], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  child.stdout.on('data', (chunk: Buffer) => (screen += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (screen += chunk.toString()));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const lines = () => plain(screen).split('\n').filter((l) => l.trim() !== '');
  return {
    raw: () => screen,
    lines,
    seen: (text: string) => until(() => lines().some((l) => l.includes(text)), 15_000, () => `"${text}" on the terminal; it shows:\n${plain(screen)}`),
    /** Ctrl-C on the terminal; resolves with the CLI's exit code (script -e passes it on). */
    async interrupt(): Promise<number | null> {
      child.stdin.write('\x03');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

describe('log format: readable lines on a terminal, JSON lines elsewhere', () => {
  it('on a terminal, the aggregator prints readable coloured lines by default, none of them JSON, and Ctrl-C stops it', async () => {
    const term = onTerminal(AGGREGATOR);
    await term.seen('aggregator serving');
    assert.equal(await term.interrupt(), 0);
    const lines = term.lines().filter((l) => l !== '^C');
    const serving = lines.find((l) => l.includes('aggregator serving'))!;
    assert.match(serving, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: aggregator serving \{"http":"127\.0\.0\.1:\d+",/);
    assert.ok(lines.some((l) => /INFO: shutting down \{"signal":"SIGINT"\}$/.test(l)), lines.join('\n'));
    for (const line of lines) assert.match(line.replace(/^\^C/, ''), PRETTY_LINE);
    assert.match(term.raw(), /\x1b\[32mINFO\x1b\[39m/, 'levels are coloured on a terminal');
  });

  it('on a terminal, the agent and dev roles print readable lines too', async () => {
    const noDocker = ['--docker', 'unix:///nonexistent/docker.sock', '--node', 'log-test'];
    for (const args of [['agent', '--aggregator', 'ws://127.0.0.1:9', ...noDocker], ['dev', '--http', '127.0.0.1:0', '--dns', '127.0.0.1:0', ...noDocker]]) {
      const term = onTerminal(args);
      await term.seen('waiting for Docker at unix:///nonexistent/docker.sock');
      assert.equal(await term.interrupt(), 0);
      const waiting = term.lines().find((l) => l.includes('waiting for Docker'))!;
      assert.match(waiting, /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: waiting for Docker at unix:\/\/\/nonexistent\/docker\.sock \{"component":"docker-watcher",/, args[0]);
      assert.ok(term.lines().some((l) => /INFO: agent starting \{/.test(l)), `${args[0]}:\n${term.lines().join('\n')}`);
    }
  });

  it('on a terminal, --log-format json prints JSON lines', async () => {
    const term = onTerminal([...AGGREGATOR, '--log-format', 'json']);
    await term.seen('aggregator serving');
    assert.equal(await term.interrupt(), 0);
    const lines = term.lines().map((l) => l.replace(/^\^C/, ''));
    const parsed = lines.map((l) => JSON.parse(l) as { level: number; msg: string });
    assert.ok(parsed.some((l) => l.level === 30 && l.msg === 'aggregator serving'));
  });

  it('without a terminal (stderr a pipe), every line is a JSON object', async () => {
    const cli = runCli(AGGREGATOR);
    try {
      await cli.waitForLog((l) => l.msg === 'aggregator serving');
    } finally {
      assert.equal(await cli.stop(), 0);
    }
    assert.ok(cli.logs.length >= 2);
    for (const line of cli.logs) assert.equal(typeof line.level, 'number', `not a JSON line: ${JSON.stringify(line)}`);
  });

  it('without a terminal, PORTOLAN_LOG_FORMAT=pretty (and --log-pretty) prints readable lines, uncoloured', async () => {
    for (const [args, env] of [[[], { PORTOLAN_LOG_FORMAT: 'pretty' }], [['--log-pretty'], {}]] as const) {
      const cli = runCli([...AGGREGATOR, ...args], { env });
      try {
        await cli.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('INFO: aggregator serving'));
      } finally {
        assert.equal(await cli.stop(), 0);
      }
      for (const line of cli.logs) {
        assert.equal(line.level, undefined, `a JSON line: ${JSON.stringify(line)}`);
        assert.match(String(line.msg), PRETTY_LINE);
        assert.doesNotMatch(String(line.msg), /\x1b\[/);
      }
    }
  });
});
