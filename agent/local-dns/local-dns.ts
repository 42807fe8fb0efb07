import type { BlockList } from 'node:net';
import { networkInterfaces } from 'node:os';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import type { DnsHandler, Transport } from '../../shared/dns/responder.js';
import type { Reply } from '../../shared/dns/recursor.js';
import { createDnsHandler, listenDns, type RunningDnsServer } from '../../shared/dns/server.js';
import { BridgeGatewayWatcher } from './bridge-gateways.js';
import type { ContainerNetworks } from './container-networks.js';
import { SplitHorizon } from './horizon.js';
import type { LocalCatalog } from './local-catalog.js';
import { readSystemUpstream } from './resolv-conf.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface LocalDnsOptions {
  /** Where to answer: these addresses, or `auto` (port 53 on every Docker bridge network's gateway, followed). */
  listen: 'auto' | readonly ListenAddress[];
  /** HOST:PORT for names outside the domain; else the host's first resolver in /etc/resolv.conf that is not us. */
  recursor?: string;
  splitHorizon: boolean;
  /** Askers answered; the others get REFUSED (default: everyone). */
  allow?: BlockList;
  catalog: LocalCatalog;
  networks: ContainerNetworks;
  docker: Docker;
  logger: Logger;
  domain: string;
  /** Until the aggregator says otherwise (setDatacenter). */
  datacenter: string;
  /** Counted for /metrics. */
  onAnswer?: () => void;
}

export interface LocalDns {
  /** The addresses answering now, `host:port`. */
  addresses(): string[];
  /** The aggregator's datacenter (from its welcome): `<name>.service.<dc>.consul` and SRV targets use it. */
  setDatacenter(datacenter: string): Promise<void>;
  close(): Promise<void>;
}

/** TTL 0 as the aggregator's default: answers change here the moment the catalog does. */
const TTL = 0;
const UDP_MAX_SIZE = 1232;
/** A host's local DNS holds far fewer names than the aggregator's: its response caches are bounded accordingly. */
const CACHE = { catalogNames: 5000, catalogBytes: 8 << 20, otherNames: 2000, otherBytes: 2 << 20 };
const AUTO_PORT = 53;
/** How long `auto` waits for Docker's network list before choosing the upstream resolver. */
const FIRST_LIST_WAIT_MS = 3000;

/**
 * The agent's DNS: the shared answering chain over the local catalog (split horizon in front
 * when on), served on the given addresses or on every bridge gateway as networks come and go.
 */
export async function startLocalDns(o: LocalDnsOptions): Promise<LocalDns> {
  const log = o.logger.child({ component: 'local-dns' });
  const listening = new Map<string, RunningDnsServer>();
  // Until the DNS can listen, the latest list waits: it is followed once it can.
  let follow = (): void => {};
  const gateways = o.listen === 'auto' ? await watchGateways(o.docker, log, () => follow()) : undefined;
  const answeringAt = (): ListenAddress[] => (gateways ? gateways.gateways.map((host) => ({ host, port: AUTO_PORT })) : [...(o.listen as ListenAddress[])]);
  const recursor = o.recursor ?? (await readSystemUpstream((address) => isOwn(address, answeringAt())));
  if (recursor) log.info({ recursor, from: o.recursor ? '--recursor' : '/etc/resolv.conf' }, `names outside .${o.domain} go to ${recursor}`);
  else log.warn(`no --recursor and no usable nameserver in /etc/resolv.conf: names outside .${o.domain} are refused`);

  let answering = await answeringFor(o, o.datacenter, recursor, log);
  // Listeners keep this one handler: a new datacenter swaps what is behind it.
  const handler: DnsHandler = { handle: (msg: Buffer, t: Transport, send: Reply, relay?: boolean, asker?: () => string) => answering.handler.handle(msg, t, send, relay, asker) };

  const listen = async (at: ListenAddress): Promise<void> => {
    const k = keyOf(at);
    if (listening.has(k)) return;
    listening.set(k, await listenDns(handler, { host: at.host, port: at.port, logger: log }));
    log.info({ address: k }, `local DNS answering on ${k}`);
  };
  const stop = async (k: string): Promise<void> => {
    const server = listening.get(k);
    listening.delete(k);
    await server?.close();
    log.info({ address: k }, `local DNS no longer answering on ${k}`);
  };
  /** Gateway changes are followed one after another, in order. */
  let following: Promise<void> = Promise.resolve();
  follow = () => void (following = following.then(() => reconcile(answeringAt(), listening, listen, stop, log)));

  if (gateways) follow();
  else for (const at of answeringAt()) await listen(at);

  const sweep = setInterval(() => o.catalog.sweep(), SWEEP_MS);
  sweep.unref();

  return {
    addresses: () => [...listening.keys()],
    async setDatacenter(datacenter) {
      if (datacenter.toLowerCase() === answering.datacenter) return;
      const next = await answeringFor(o, datacenter, recursor, log);
      const previous = answering;
      answering = next;
      previous.close();
    },
    async close() {
      clearInterval(sweep);
      await gateways?.stop();
      await following;
      await Promise.all([...listening.keys()].map(stop));
      answering.close();
      o.catalog.close();
    },
  };
}

/**
 * Follows the bridge gateways; resolves once Docker listed them (or FIRST_LIST_WAIT_MS passed,
 * Docker being away), so the upstream resolver is chosen knowing which addresses are ours.
 */
async function watchGateways(docker: Docker, log: Logger, changed: () => void): Promise<BridgeGatewayWatcher> {
  let listed!: () => void;
  const first = new Promise<void>((resolve) => (listed = resolve));
  let started = false;
  const watcher = new BridgeGatewayWatcher({
    docker,
    logger: log,
    onChange: () => {
      listed();
      if (started) changed();
    },
  });
  watcher.start();
  const timer = setTimeout(listed, FIRST_LIST_WAIT_MS);
  await first;
  clearTimeout(timer);
  started = true;
  return watcher;
}

/** Every cached name is seen asked again within this (see LocalCatalog.sweep). */
const SWEEP_MS = 60_000;

async function answeringFor(o: LocalDnsOptions, datacenter: string, recursor: string | undefined, log: Logger): Promise<{ handler: DnsHandler; close(): void; datacenter: string }> {
  const made = await createDnsHandler({
    query: o.catalog,
    domain: o.domain,
    altDomains: [],
    datacenter,
    serviceTtl: TTL,
    nodeTtl: TTL,
    recursor,
    udpMaxSize: UDP_MAX_SIZE,
    logger: log,
    cache: CACHE,
    ...(o.splitHorizon ? { horizon: new SplitHorizon(o.catalog, o.networks) } : {}),
    ...(o.allow ? { allow: o.allow } : {}),
    ...(o.onAnswer ? { observe: o.onAnswer } : {}),
  });
  return { ...made, datacenter: datacenter.toLowerCase() };
}

/** Listens on the addresses wanted now and stops on the others; one that cannot bind is logged and tried at the next change. */
async function reconcile(
  wanted: readonly ListenAddress[],
  listening: ReadonlyMap<string, unknown>,
  listen: (at: ListenAddress) => Promise<void>,
  stop: (key: string) => Promise<void>,
  log: Logger,
): Promise<void> {
  const keep = new Set(wanted.map(keyOf));
  await Promise.all([...listening.keys()].filter((k) => !keep.has(k)).map(stop));
  for (const at of wanted) {
    await listen(at).catch((err: unknown) => log.error({ address: keyOf(at), err: err instanceof Error ? err.message : String(err) }, `local DNS cannot answer on ${keyOf(at)}`));
  }
}

function keyOf(at: ListenAddress): string {
  return at.host.includes(':') ? `[${at.host}]:${at.port}` : `${at.host}:${at.port}`;
}

/**
 * Whether a resolv.conf nameserver (always port 53) is this DNS: one of its port-53 addresses,
 * or any address of this host when it answers on port 53 of the wildcard of that family.
 */
function isOwn(address: string, at: readonly ListenAddress[]): boolean {
  const v6 = address.includes(':');
  return at.some((l) => l.port === 53 && (l.host === address || (l.host === (v6 ? '::' : '0.0.0.0') && hostAddresses().has(address))));
}

function hostAddresses(): Set<string> {
  const all = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
  // 127.0.0.0/8 is all this host's: a wildcard listener on 53 holds 127.0.0.53 too.
  return new Set([...all, ...(all.includes('127.0.0.1') ? ['127.0.0.53'] : [])]);
}
