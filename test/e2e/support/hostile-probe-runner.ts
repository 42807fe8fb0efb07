/**
 * The measuring half of hostile-probe.ts, in a process of its own so that the attack the
 * test process generates (floods, thousands of sockets, its garbage collections) does not
 * delay the probe's own timers and inflate what it measures. Started with an IPC channel;
 * `stop` ends the loops and the report comes back as one message.
 *
 * While it runs: a real DNS query for the registered name over UDP every 20 ms (the answer
 * must be NOERROR with an A record; a query unanswered in 1 s counts as 1 s), a GET of
 * `/v1/health/service/<name>?passing` every 100 ms (each ServiceID passing at the start must
 * still be there), and the aggregator's VmRSS every 100 ms.
 */
import { createSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Packet } from 'dns2';
import { buildQuery } from '../../fixtures/dns/raw.js';

export interface ProbeRunnerReport {
  /** `worst`: the slowest query, and when it was sent (ms after the probe started), to place a stall. */
  dns: { sent: number; answered: number; lost: number; latenciesMs: number[]; bad: string[]; worst: { ms: number; atMs: number } };
  http: { polls: number; latenciesMs: number[]; failures: string[] };
  rss: { firstMb: number; maxMb: number; lastMb: number };
}

const DNS_EVERY_MS = 20;
const WARMUP_QUERIES = 5;
export const DNS_LOST_MS = 1000;
const HTTP_EVERY_MS = 100;
const HTTP_TIMEOUT_MS = 2000;
const RSS_EVERY_MS = 100;
/** Failure descriptions kept (the counts are complete; the messages only need to show the kind). */
const KEEP = 10;

const { values } = parseArgs({
  options: { 'dns-port': { type: 'string' }, 'http-port': { type: 'string' }, service: { type: 'string' }, pid: { type: 'string' }, ids: { type: 'string' } },
});
const dnsPort = Number(values['dns-port']);
const httpBase = `http://127.0.0.1:${values['http-port']}`;
const service = values.service!;
const pid = Number(values.pid);
const expectedIds: string[] = JSON.parse(values.ids!) as string[];

let running = true;
const report: ProbeRunnerReport = {
  dns: { sent: 0, answered: 0, lost: 0, latenciesMs: [], bad: [], worst: { ms: 0, atMs: 0 } },
  http: { polls: 0, latenciesMs: [], failures: [] },
  rss: { firstMb: 0, maxMb: 0, lastMb: 0 },
};
const keep = (list: string[], what: string): void => void (list.length < KEEP && list.push(what));
/** When measuring began (after the warm-up), performance.now(). */
let startedAt = 0;

function latency(ms: number, sentAt: number): void {
  report.dns.latenciesMs.push(ms);
  if (ms > report.dns.worst.ms) report.dns.worst = { ms: Math.round(ms), atMs: Math.round(sentAt - startedAt) };
}

async function pollDns(): Promise<void> {
  const socket = createSocket('udp4');
  /** Query ID → when it was sent; warm-up queries are not measured. */
  const outstanding = new Map<number, { at: number; measured: boolean }>();
  // The first answers pay for this process's own warm-up (JIT, first parse).
  let warmup = WARMUP_QUERIES;
  socket.on('message', (msg) => {
    const id = msg.readUInt16BE(0);
    const sent = outstanding.get(id);
    if (sent === undefined) return;
    outstanding.delete(id);
    if (!sent.measured) {
      if (warmup > 0 && --warmup === 0) {
        startedAt = performance.now();
        process.send!('ready');
      }
      return;
    }
    report.dns.answered++;
    latency(performance.now() - sent.at, sent.at);
    const reply = Packet.parse(msg);
    const rcode = msg[3]! & 15;
    if (rcode !== 0 || !reply.answers.some((a) => a.type === Packet.TYPE.A)) keep(report.dns.bad, `rcode ${rcode}, ${reply.answers.length} answers`);
  });
  const expire = (): void => {
    for (const [id, sent] of outstanding) {
      if (performance.now() - sent.at < DNS_LOST_MS) continue;
      outstanding.delete(id);
      if (!sent.measured) continue;
      report.dns.lost++;
      latency(DNS_LOST_MS, sent.at);
    }
  };
  let id = 0;
  while (running) {
    id = (id + 1) & 0xffff;
    const measured = warmup <= 0;
    outstanding.set(id, { at: performance.now(), measured });
    if (measured) report.dns.sent++;
    socket.send(buildQuery(`${service}.service.consul`, Packet.TYPE.A, { id }), dnsPort, '127.0.0.1');
    expire();
    await sleep(DNS_EVERY_MS);
  }
  while (outstanding.size > 0) {
    expire();
    await sleep(DNS_EVERY_MS);
  }
  socket.close();
}

async function pollHttp(): Promise<void> {
  while (running) {
    const t0 = performance.now();
    try {
      const res = await fetch(`${httpBase}/v1/health/service/${service}?passing`, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
      const body = (await res.json()) as Array<{ Service: { ID: string } }>;
      report.http.latenciesMs.push(performance.now() - t0);
      const passing = new Set(body.map((e) => e.Service.ID));
      const missing = expectedIds.filter((id) => !passing.has(id));
      if (res.status !== 200 || missing.length > 0) keep(report.http.failures, `HTTP ${res.status}, not passing: ${missing.join(', ')}`);
    } catch (err) {
      report.http.latenciesMs.push(performance.now() - t0);
      keep(report.http.failures, `no answer: ${String(err)}`);
    }
    report.http.polls++;
    await sleep(HTTP_EVERY_MS);
  }
}

async function sampleRss(): Promise<void> {
  while (running) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
    if (kb > 0) {
      const mb = kb / 1024;
      report.rss.firstMb ||= mb;
      report.rss.maxMb = Math.max(report.rss.maxMb, mb);
      report.rss.lastMb = mb;
    }
    await sleep(RSS_EVERY_MS);
  }
}

const loops = Promise.all([pollDns(), pollHttp(), sampleRss()]);
process.on('message', (m) => {
  if (m !== 'stop') return;
  running = false;
  void loops.then(() => process.send!(report, () => process.exit(0)));
});
