import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive, killPids, runOk, stopPid, waitForExit } from './processes.js';
import { netnsPath, type HostLayout } from './layout.js';

/** How long a dockerd may take on SIGTERM: it stops running containers first (10 s each, in parallel). */
const ENGINE_STOP_GRACE_MS = 20_000;
/** How long a killed engine's containerd may take to follow it before it is killed too. */
const CONTAINERD_EXIT_MS = 5_000;

function pingEngine(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', timeout: 1_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * One dockerd inside a host's network namespace, entered with `nsenter --net` (unlike
 * `ip netns exec`, it keeps the root /sys and the cgroup mounts). Every path is private to
 * the host: data, exec root (with its own managed containerd), socket, pidfile, config file
 * (so /etc/docker/daemon.json cannot interfere) and trust key (so each engine has its own ID).
 */
export class DockerEngine {
  private pid: number | undefined;

  constructor(
    private readonly host: HostLayout,
    private readonly readyTimeoutMs: number,
  ) {}

  get logPath(): string {
    return join(this.host.dir, 'dockerd.log');
  }

  /** PID of the running dockerd, if any. */
  get runningPid(): number | undefined {
    return this.pid;
  }

  async start(): Promise<void> {
    if (this.pid !== undefined && (await isAlive(this.pid))) throw new Error(`engine of ${this.host.name} is already running`);
    const configPath = await this.writeConfig();
    await this.forgetDeadContainerd();
    const log = await open(this.logPath, 'a');
    const child = spawn('nsenter', [`--net=${netnsPath(this.host.ns)}`, 'dockerd', ...this.args(configPath)], {
      stdio: ['ignore', log.fd, log.fd],
      detached: true,
    });
    const spawned = new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', reject);
    });
    child.unref();
    await log.close();
    this.pid = await spawned;
    await this.waitUntilReady();
  }

  /** SIGTERM (dockerd stops its containers first), SIGKILL after a grace period; waits for the exit. */
  async stop(): Promise<void> {
    if (this.pid !== undefined) await stopPid(this.pid, ENGINE_STOP_GRACE_MS);
    this.pid = undefined;
  }

  /**
   * SIGKILL, as in a crash: containers and their shims keep running until the engine is started
   * again. Returns once the managed containerd has gone too (it gets a parent-death signal): a
   * start while it is still shutting down found its socket half gone and waited on it until
   * dockerd's own timeout (`containerd.sock: timeout`, seen once in CI).
   */
  async kill(): Promise<void> {
    if (this.pid !== undefined) await killPids([this.pid]);
    this.pid = undefined;
    const containerd = await this.containerdPid();
    if (containerd !== undefined && !(await waitForExit(containerd, CONTAINERD_EXIT_MS))) await killPids([containerd]);
  }

  private async containerdPid(): Promise<number | undefined> {
    const pid = Number(await readFile(this.containerdPidFile, 'utf8').catch(() => ''));
    return pid > 0 ? pid : undefined;
  }

  private get containerdPidFile(): string {
    return join(this.host.dir, 'exec', 'containerd', 'containerd.pid');
  }

  /** Removes every container at once (SIGKILL), so that a following stop() does not wait for stop timeouts. */
  async removeAllContainers(docker: (args: string[]) => Promise<string>): Promise<void> {
    const ids = (await docker(['ps', '-aq'])).split('\n').filter(Boolean);
    if (ids.length > 0) await docker(['rm', '-f', ...ids]);
  }

  async isResponding(): Promise<boolean> {
    return pingEngine(this.host.socketPath);
  }

  private args(configPath: string): string[] {
    const { dir, name, ns, socketPath, dockerBridgeCidr } = this.host;
    return [
      '--config-file', configPath,
      '--data-root', join(dir, 'data'),
      '--exec-root', join(dir, 'exec'),
      '--pidfile', join(dir, 'dockerd.pid'),
      '-H', `unix://${socketPath}`,
      '--bip', dockerBridgeCidr,
      // Own cgroup parent: the containers' cgroups are recognisably ours and removable at teardown.
      '--cgroup-parent', `/${ns}`,
      '--label', `portolan.testbed.host=${name}`,
    ];
  }

  private async writeConfig(): Promise<string> {
    await mkdir(this.host.dir, { recursive: true });
    const configPath = join(this.host.dir, 'daemon.json');
    // init: docker-init (tini) is every container's PID 1 and forwards SIGTERM. Without it, `httpd`
    // or `sleep` as PID 1 ignore SIGTERM, and every stop or engine restart waits 10 s for the SIGKILL.
    const { containerPrefix6 } = this.host;
    const config = {
      'deprecated-key-path': join(this.host.dir, 'key.json'),
      init: true,
      // Only docker0 needs these: `docker network create --ipv6` works without them. ip6tables stays
      // off (20.10's default, experimental there): `::` ports go through docker-proxy, no IPv6 NAT.
      ...(containerPrefix6 === undefined ? {} : { ipv6: true, 'fixed-cidr-v6': containerPrefix6 }),
    };
    await writeFile(configPath, JSON.stringify(config));
    return configPath;
  }

  /**
   * After a SIGKILL the managed containerd dies too (parent-death signal) but, reparented to PID 1,
   * may stay a zombie for a while when PID 1 is slow to reap; dockerd would take that PID for a
   * live containerd and wait for its socket forever. A pidfile naming a dead process is removed.
   */
  private async forgetDeadContainerd(): Promise<void> {
    const pid = await this.containerdPid();
    if (pid !== undefined && !(await isAlive(pid))) await rm(this.containerdPidFile, { force: true });
  }

  private async waitUntilReady(): Promise<void> {
    const pid = this.pid!;
    const deadline = Date.now() + this.readyTimeoutMs;
    while (!(await pingEngine(this.host.socketPath))) {
      if (!(await isAlive(pid))) {
        this.pid = undefined;
        throw new Error(`dockerd of ${this.host.name} exited during start-up; end of ${this.logPath}:\n${await this.logTail()}`);
      }
      if (Date.now() >= deadline) {
        await stopPid(pid, 5_000);
        this.pid = undefined;
        throw new Error(`dockerd of ${this.host.name} did not answer within ${this.readyTimeoutMs} ms; end of ${this.logPath}:\n${await this.logTail()}`);
      }
      await sleep(50);
    }
  }

  private async logTail(lines = 30): Promise<string> {
    const text = await readFile(this.logPath, 'utf8').catch(() => '(no log)');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }
}

/** Runs the docker CLI against one engine; resolves with stdout (trailing newline trimmed), throws with stderr. */
export function dockerCli(socketPath: string, cliConfigDir: string): (args: string[]) => Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: `unix://${socketPath}`, DOCKER_CONFIG: cliConfigDir };
  for (const inherited of ['DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH']) delete env[inherited];
  return async (args) => (await runOk('docker', args, { env })).replace(/\n$/, '');
}
