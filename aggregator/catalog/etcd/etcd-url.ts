/**
 * The store URL and etcd credentials as the CLI reads them. Its own module, apart from
 * connect.ts: the CLI checks --store for every role, and connect.ts loads etcd3 and gRPC (~20 MB
 * of RSS), which an agent must never load (bench:agent: 71 MB idle with it, 51 without).
 */

export interface EtcdTls {
  /** PEM text of the CA that signed the members' certificates (system CAs when absent). */
  ca?: string;
  /** PEM text of this client's certificate and key (mutual TLS). */
  cert?: string;
  key?: string;
}

export interface EtcdAuth {
  username: string;
  password: string;
}

export interface EtcdTarget {
  /** `http://HOST:PORT` or `https://HOST:PORT`, one per member given. */
  endpoints: string[];
  tls: boolean;
}

/**
 * `etcd://HOST:PORT[,HOST:PORT…]` (plain gRPC) or `etcds://HOST:PORT[,…]` (TLS: system CAs unless
 * --etcd-ca is given). The port defaults to 2379; IPv6 hosts in brackets (`[::1]:2379`).
 */
export function parseEtcdUrl(url: string): EtcdTarget {
  const m = /^(etcds?):\/\/(.*)$/.exec(url.trim());
  if (!m) throw new Error(`store URL ${JSON.stringify(url)}: expected etcd://HOST:PORT[,HOST:PORT…] or etcds://… (TLS)`);
  const tls = m[1] === 'etcds';
  const list = m[2]!.replace(/\/+$/, '');
  if (list.length === 0) throw new Error(`store URL ${JSON.stringify(url)}: no etcd member given`);
  const endpoints = list.split(',').map((part) => {
    const hp = part.trim();
    const v6 = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(hp);
    const v4 = /^([A-Za-z0-9.-]+)(?::(\d+))?$/.exec(hp);
    const host = v6 ? `[${v6[1]}]` : v4?.[1];
    const portText = v6 ? v6[2] : v4?.[2];
    if (!host) throw new Error(`store URL ${JSON.stringify(url)}: ${JSON.stringify(hp)} is not HOST:PORT`);
    const port = portText === undefined ? 2379 : Number(portText);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`store URL ${JSON.stringify(url)}: bad port in ${JSON.stringify(hp)}`);
    return `${tls ? 'https' : 'http'}://${host}:${port}`;
  });
  return { endpoints, tls };
}
