import { readFile } from 'node:fs/promises';
import { isIPv4, isIPv6 } from 'node:net';

/**
 * The `nameserver` addresses of resolv.conf text, in file order, read as glibc reads them:
 * the keyword starts the line and is followed by a blank; the address ends at the next blank
 * (a CR counts as one, unlike glibc), so a trailing comment is ignored; lines starting with
 * `#` or `;`, other keywords and values that are not an IPv4 or IPv6 address are skipped.
 * An IPv6 zone (`fe80::1%eth0`) is kept: a link-local resolver cannot be reached without it,
 * and Node's sockets accept it. All are returned, not only glibc's first three, so that one
 * of ours among those can be skipped in favour of a later one.
 */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^nameserver[ \t]+([^\s]+)/.exec(line);
    if (m && isAddress(m[1]!)) out.push(m[1]!);
  }
  return out;
}

/**
 * The first nameserver that is not one of our own listen addresses, as `HOST:PORT` on port 53
 * (`1.2.3.4:53`, `[fd00::1]:53`). `own` gets the address without its zone and decides alone:
 * it says true for every local address when we listen on 0.0.0.0 or ::, and false for a
 * loopback stub such as systemd-resolved's 127.0.0.53 unless we listen there on port 53.
 */
export function chooseUpstream(nameservers: readonly string[], own: (address: string) => boolean): string | undefined {
  const chosen = nameservers.find((ns) => !own(withoutZone(ns)));
  if (chosen === undefined) return undefined;
  return isIPv6(withoutZone(chosen)) ? `[${chosen}]:53` : `${chosen}:53`;
}

/** The host's upstream per `chooseUpstream`; undefined when the file is missing or names none. */
export async function readSystemUpstream(own: (address: string) => boolean, path = '/etc/resolv.conf'): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return chooseUpstream(parseResolvConf(text), own);
}

function isAddress(value: string): boolean {
  // Node's isIPv6 accepts one `%zone` suffix.
  return isIPv4(value) || isIPv6(value);
}

function withoutZone(address: string): string {
  return address.split('%')[0]!;
}
