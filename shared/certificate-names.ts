import { X509Certificate } from 'node:crypto';

/**
 * Which node names a client certificate speaks for: its DNS subject alternative names, or its
 * subject CN when it has no DNS SAN (RFC 6125's rule, and what OpenSSL's host check does by
 * default). Matched case-insensitively, as DNS names are; no wildcards: a certificate names one
 * host, and `*.nodes.example` covering every node would undo the point of per-host identities.
 * Shared: the aggregator judges agents with it, and an agent checks its own --node at start.
 */

/** The parts of a certificate this reads, as Node's `tls` gives them (PeerCertificate). */
export interface CertificateSubject {
  /** Node's text form: `DNS:a, DNS:b, IP Address:10.0.0.1`; a value with `,` `"` `\` or controls is a JSON string. */
  subjectaltname?: string;
  subject?: { CN?: string | string[] } | null;
}

/** The names the certificate covers, in its own spelling. */
export function certificateNodeNames(cert: CertificateSubject): string[] {
  const dns = subjectAltNames(cert.subjectaltname ?? '').filter((n) => n.type === 'DNS').map((n) => n.value);
  if (dns.length > 0) return dns;
  const cn = cert.subject?.CN;
  return cn === undefined ? [] : Array.isArray(cn) ? cn : [cn];
}

/** The names of a PEM certificate (the first in the text), as certificateNodeNames() reads them. */
export function pemCertificateNames(pem: string): string[] {
  const x509 = new X509Certificate(pem);
  // X509Certificate gives the subject as `KEY=value` lines; only the CNs matter here.
  const cn = [...x509.subject.matchAll(/^CN=(.*)$/gm)].map((m) => m[1]!);
  return certificateNodeNames({ subjectaltname: x509.subjectAltName, subject: { CN: cn } });
}

/** True when `node` equals one of `names`, ignoring case. */
export function namesCover(names: readonly string[], node: string): boolean {
  const wanted = node.toLowerCase();
  return names.some((n) => n.toLowerCase() === wanted);
}

/**
 * Splits Node's subjectaltname text into entries. Node prints a value that holds a comma, a
 * quote, a backslash or a control character as a JSON string (since 17.3, so that a crafted
 * name cannot pass for two entries); anything else runs to the next ", ".
 */
export function subjectAltNames(text: string): Array<{ type: string; value: string }> {
  const out: Array<{ type: string; value: string }> = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) break;
    const type = text.slice(i, colon);
    let value: string;
    let end: number;
    if (text[colon + 1] === '"') {
      end = closingQuote(text, colon + 1);
      if (end < 0) break;
      value = JSON.parse(text.slice(colon + 1, end + 1)) as string;
      end++;
    } else {
      end = text.indexOf(', ', colon + 1);
      if (end < 0) end = text.length;
      value = text.slice(colon + 1, end);
    }
    out.push({ type, value });
    i = end + (text.startsWith(', ', end) ? 2 : 0);
    if (i === end && end < text.length) break;
  }
  return out;
}

/** Index of the quote that ends the JSON string opening at `open`, or -1. */
function closingQuote(text: string, open: number): number {
  for (let j = open + 1; j < text.length; j++) {
    if (text[j] === '\\') j++;
    else if (text[j] === '"') return j;
  }
  return -1;
}
