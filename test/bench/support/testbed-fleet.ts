import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_IMAGE, type Host } from '../../testbed/index.js';
import { NODE_FLAGS } from '../../../cli/v8-tuning.js';
import { JsonLines } from './json-lines.js';

/** The real agent (built CLI) inside a testbed host's namespace; resolves once registered. */
export async function startAgentOn(host: Host, cli: string, aggregator: string): Promise<{ pid: number; logs: JsonLines }> {
  const child = await host.spawn(process.execPath, [...NODE_FLAGS, cli, 'agent', '--aggregator', aggregator, '--docker', host.dockerHost, '--node', host.name], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const logs = new JsonLines(child.stderr!);
  await logs.waitFor((l) => l.msg === 'registered with aggregator', 30_000, `agent on ${host.name} registering`);
  return { pid: child.pid!, logs };
}

/** Port published by bench container i (distinct per container so each is a distinct instance). */
export const benchPort = (i: number): number => 20000 + i;

/** Starts bench container i on the host: a busybox httpd registered as service `name`. */
export function runBenchContainer(host: Host, name: string, i: number): Promise<string> {
  return host.docker(['run', '-d', '--name', name, '-e', `SERVICE_NAME=${name}`, '-p', `${benchPort(i)}:80`, TEST_IMAGE, 'httpd', '-f', '-p', '80', '-h', '/www']);
}

/**
 * The engine's container events (`docker events`), for their timestamps: Docker's own
 * clock of when a container started or was signalled, on the same machine as ours.
 */
export class DockerEvents {
  readonly #child: ChildProcess;
  readonly #lines: JsonLines;

  private constructor(child: ChildProcess) {
    this.#child = child;
    this.#lines = new JsonLines(child.stdout!);
  }

  static async open(host: Host): Promise<DockerEvents> {
    const config = await mkdtemp(join(tmpdir(), 'portolan-bench-docker-'));
    const child = spawn('docker', ['--host', host.dockerHost, 'events', '--format', '{{json .}}', '--filter', 'type=container'], {
      env: { ...process.env, DOCKER_CONFIG: config },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    return new DockerEvents(child);
  }

  /** Wall-clock ms (from timeNano) of the container's `action` event. */
  async at(name: string, action: string, timeoutMs = 30_000): Promise<number> {
    const hit = await this.#lines.waitFor(
      (e) => e.Action === action && (e.Actor as { Attributes?: Record<string, string> } | undefined)?.Attributes?.name === name,
      timeoutMs,
      `docker ${action} event of ${name}`,
    );
    return Number(hit.timeNano) / 1e6;
  }

  close(): void {
    if (this.#child.exitCode === null) this.#child.kill('SIGTERM');
  }
}
