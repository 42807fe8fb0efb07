import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface IssuedCertificate {
  /** PEM files, for flags. */
  cert: string;
  key: string;
}

/**
 * A private CA in `dir`, made with the real openssl, issuing certificates with the names asked
 * for (DNS and IP SANs, or only a CN). P-256 keys: an RSA key costs openssl up to a second.
 */
export class TestPki {
  readonly ca: string;
  #serial = 0;

  constructor(private readonly dir: string, subject = '/CN=portolan test CA') {
    this.ca = join(dir, 'ca.pem');
    this.#openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', subject, '-keyout', join(dir, 'ca.key'), '-out', this.ca]);
  }

  issue(name: string, { cn = name, dns = [], ip = [] }: { cn?: string; dns?: string[]; ip?: string[] } = {}): IssuedCertificate {
    const base = join(this.dir, `${name}-${++this.#serial}`);
    const [cert, key, csr, ext] = ['.pem', '.key', '.csr', '.ext'].map((s) => base + s) as [string, string, string, string];
    this.#openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${cn}`, '-keyout', key, '-out', csr]);
    const sans = [...dns.map((d) => `DNS:${d}`), ...ip.map((a) => `IP:${a}`)];
    writeFileSync(ext, sans.length > 0 ? `subjectAltName=${sans.join(',')}\n` : '\n');
    this.#openssl(['x509', '-req', '-in', csr, '-CA', this.ca, '-CAkey', join(this.dir, 'ca.key'), '-CAcreateserial', '-days', '1', '-extfile', ext, '-out', cert]);
    return { cert, key };
  }

  #openssl(args: string[]): void {
    execFileSync('openssl', args, { stdio: 'ignore', cwd: this.dir });
  }
}
