import { readFileSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { joinHostPort } from '../shared/net-address.js';
import { parseGoDuration } from '../shared/duration.js';

/**
 * A small declarative flag parser. Every flag also reads an environment variable, and
 * registrator's single-dash spellings (`-ip`, `-internal`, …) are accepted as aliases so
 * users can keep their existing command lines.
 */

export type FlagKind = 'string' | 'boolean' | 'list' | 'duration' | 'integer';

export interface FlagSpec {
  name: string;
  kind: FlagKind;
  env: string;
  help: string;
  default?: string;
  aliases?: readonly string[];
  choices?: readonly string[];
}

export type FlagValue = string | boolean | string[] | number | undefined;

export class UsageError extends Error {}

type Values = Record<string, FlagValue>;

/** Parses argv (after the subcommand) against the specs; flags beat env, env beats defaults. */
export function parseFlags(
  specs: readonly FlagSpec[],
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): { values: Values; help: boolean } {
  const byName = indexSpecs(specs);
  const raw = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h' || arg === '-help') return { values: {}, help: true };
    const match = /^--?([A-Za-z][\w-]*)(?:=(.*))?$/.exec(arg);
    if (!match) throw new UsageError(`unexpected argument "${arg}"`);
    const spec = byName.get(match[1]!);
    if (!spec) throw new UsageError(`unknown flag "${arg}"`);
    let value = match[2];
    if (value === undefined) {
      if (spec.kind === 'boolean') value = 'true';
      else if (i + 1 < argv.length) value = argv[++i]!;
      else throw new UsageError(`flag --${spec.name} needs a value`);
    }
    // A list flag given again adds to it (--api-token a --api-token b); any other flag is replaced.
    const before = raw.get(spec.name);
    raw.set(spec.name, spec.kind === 'list' && before !== undefined ? `${before},${value}` : value);
  }
  const values: Values = {};
  for (const spec of specs) {
    const text = raw.get(spec.name) ?? nonEmpty(env[spec.env]) ?? spec.default;
    values[spec.name] = text === undefined ? undefined : convert(spec, text);
  }
  return { values, help: false };
}

export function usage(command: string, summary: string, specs: readonly FlagSpec[]): string {
  const rows = specs.map((s) => {
    const flag = `--${s.name}${s.kind === 'boolean' ? '' : ` <${s.kind === 'list' ? 'a,b' : s.kind}>`}`;
    const extra = [
      s.default !== undefined ? `default ${s.default}` : '',
      `env ${s.env}`,
      s.aliases?.length ? `alias ${s.aliases.map((a) => `-${a}`).join(', ')}` : '',
    ].filter(Boolean);
    return `  ${flag.padEnd(34)} ${s.help} (${extra.join('; ')})`;
  });
  return `Usage: portolan ${command} [flags]\n\n${summary}\n\nFlags:\n${rows.join('\n')}\n  --help                             show this help\n`;
}

function indexSpecs(specs: readonly FlagSpec[]): Map<string, FlagSpec> {
  const byName = new Map<string, FlagSpec>();
  for (const s of specs) {
    byName.set(s.name, s);
    for (const a of s.aliases ?? []) byName.set(a, s);
  }
  return byName;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

function convert(spec: FlagSpec, text: string): FlagValue {
  switch (spec.kind) {
    case 'boolean':
      return parseBoolean(spec, text);
    case 'list':
      return text.split(',').map((t) => t.trim()).filter(Boolean);
    case 'duration':
      return parseDuration(spec, text);
    case 'integer':
      return parseInteger(spec, text);
    case 'string':
      if (spec.choices && !spec.choices.includes(text)) {
        throw new UsageError(`--${spec.name} must be one of ${spec.choices.join(', ')}, got "${text}"`);
      }
      return text;
  }
}

function parseBoolean(spec: FlagSpec, text: string): boolean {
  if (/^(1|true|yes|on)$/i.test(text)) return true;
  if (/^(0|false|no|off)$/i.test(text)) return false;
  throw new UsageError(`--${spec.name} must be true or false, got "${text}"`);
}

function parseInteger(spec: FlagSpec, text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`--${spec.name} must be a whole number, got "${text}"`);
  return Number(text);
}

/** Durations as Go writes them ("1m30s", "500ms"); a bare number means seconds. Returns ms. */
export function parseDuration(spec: Pick<FlagSpec, 'name'>, text: string): number {
  const ms = /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : parseGoDuration(text);
  if (ms === undefined || ms < 0) {
    throw new UsageError(`--${spec.name} must be a duration such as 500ms, 3s, 1m30s, got "${text}"`);
  }
  return Math.round(ms);
}

/** Reads a file named by a flag; a missing or unreadable file is a usage error naming the flag. */
export function readFlagFile(flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--${flag}: cannot read ${path}: ${(err as Error).message}`);
  }
}

/** Splits "host:port" or "[v6]:port" (`[::]:8500`, `[fd00::1%eth0]:53`); a bare port binds all interfaces. */
export function parseHostPort(flag: string, text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new UsageError(`--${flag} must be HOST:PORT (an IPv6 address in brackets: [::]:8500), got "${text}"`);
  }
  if (m[1] && !isIPv6(m[1])) throw new UsageError(`--${flag}: "${m[1]}" in brackets is not an IPv6 address, in "${text}"`);
  return { host: m[1] || m[2] || '0.0.0.0', port };
}

/** HOST:PORT checked, given back as text with an IPv6 address in brackets (as a recursor takes it). */
export function parseHostPortText(flag: string, text: string): string {
  const { host, port } = parseHostPort(flag, text);
  return joinHostPort(host, port);
}
