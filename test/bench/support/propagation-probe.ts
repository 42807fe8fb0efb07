/**
 * Runs inside a testbed host's network namespace for bench:propagation, as one long-lived
 * process so that watching costs no process start. Commands arrive as JSON lines on stdin:
 *
 *   {"name":"p7","want":"present","address":"10.213.1.3","port":20007}   or   {"name":"p7","want":"absent"}
 *
 * For each, it takes the service's current X-Consul-Index, prints {"armed":name}, then
 * (a) asks the aggregator's DNS for <name>.service.consul A back to back until the answer is
 * right (the address in an A record / NXDOMAIN), and (b) keeps a blocking query on
 * /v1/health/service/<name> until an answer is right. Each prints {"name","via","at"}, `at`
 * being wall-clock ms with sub-ms precision (same clock as Docker's event timeNano).
 */
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

interface Watch {
  name: string;
  want: 'present' | 'absent';
  address?: string;
  port?: number;
}

const { values } = parseArgs({ options: { server: { type: 'string' }, 'dns-port': { type: 'string' }, 'http-port': { type: 'string' } } });
const server = values.server!;
const dnsPort = Number(values['dns-port']);
const httpBase = `http://${server}:${values['http-port']}`;
const wallMs = (): number => performance.timeOrigin + performance.now();
const emit = (o: object): void => void process.stdout.write(`${JSON.stringify(o)}\n`);

function query(name: string, id: number): Buffer {
  const labels = `${name}.service.consul`.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const header = Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

/** Skips a (possibly compressed) name starting at `at`; returns the offset after it. */
function skipName(msg: Buffer, at: number): number {
  for (;;) {
    const len = msg[at]!;
    if (len === 0) return at + 1;
    if ((len & 0xc0) === 0xc0) return at + 2;
    at += len + 1;
  }
}

/** The rcode and the IPv4 addresses of the A records in a response. */
function parseAnswer(msg: Buffer): { rcode: number; addresses: string[] } {
  const rcode = msg[3]! & 15;
  const answers = msg.readUInt16BE(6);
  let at = skipName(msg, 12) + 4;
  const addresses: string[] = [];
  for (let i = 0; i < answers; i++) {
    at = skipName(msg, at);
    const type = msg.readUInt16BE(at);
    const length = msg.readUInt16BE(at + 8);
    if (type === 1 && length === 4) addresses.push([...msg.subarray(at + 10, at + 14)].join('.'));
    at += 10 + length;
  }
  return { rcode, addresses };
}

async function watchDns(w: Watch): Promise<void> {
  const socket = createSocket('udp4');
  let id = 0;
  try {
    for (;;) {
      id = (id + 1) & 0xffff;
      const reply = await new Promise<Buffer | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), 200);
        socket.once('message', (m) => (clearTimeout(timer), resolve(m)));
        socket.send(query(w.name, id), dnsPort, server);
      });
      if (reply && reply.readUInt16BE(0) === id) {
        const { rcode, addresses } = parseAnswer(reply);
        const right = w.want === 'absent' ? rcode === 3 : rcode === 0 && addresses.includes(w.address!);
        if (right) return emit({ name: w.name, want: w.want, via: 'dns', at: wallMs() });
      }
      socket.removeAllListeners('message');
    }
  } finally {
    socket.close();
  }
}

async function get(path: string): Promise<{ index: number; body: Array<{ Service: { Address: string; Port: number } }> }> {
  const res = await fetch(`${httpBase}${path}`);
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status}`);
  return { index: Number(res.headers.get('x-consul-index')), body: (await res.json()) as Array<{ Service: { Address: string; Port: number } }> };
}

async function watchHttp(w: Watch, index: number): Promise<void> {
  for (;;) {
    const res = await get(`/v1/health/service/${w.name}?index=${index}&wait=30s`);
    const right = w.want === 'absent' ? res.body.length === 0 : res.body.some((e) => e.Service.Address === w.address && e.Service.Port === w.port);
    if (right) return emit({ name: w.name, want: w.want, via: 'http', at: wallMs() });
    index = res.index;
  }
}

createInterface({ input: process.stdin }).on('line', (line) => {
  const w = JSON.parse(line) as Watch;
  void get(`/v1/health/service/${w.name}`)
    .then(({ index }) => {
      emit({ armed: w.name });
      return Promise.all([watchDns(w), watchHttp(w, index)]);
    })
    .catch((err: unknown) => emit({ name: w.name, error: String(err) }));
});
emit({ ready: true });
