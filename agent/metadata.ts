/**
 * Registrator-compatible container metadata: `SERVICE_<KEY>` and `SERVICE_<port>_<KEY>`
 * from the container's environment and labels. Labels override env; a port-specific key
 * beats the generic one whatever their order. Keys after `SERVICE_` are case-insensitive.
 */

/** Keys with a meaning of their own; every other key becomes service meta. */
const reserved = new Set(['name', 'tags', 'id', 'ignore', 'network', 'ports', 'advertise']);

export interface ContainerMetadata {
  generic: ReadonlyMap<string, string>;
  /** container port → key → value */
  perPort: ReadonlyMap<number, ReadonlyMap<string, string>>;
}

/** What applies to one container port after merging generic and port-specific keys. */
export interface PortMetadata {
  name?: string;
  /** True when the name came from SERVICE_<port>_NAME (exempt from the multi-port suffix). */
  nameFromPort: boolean;
  tags: string[];
  id?: string;
  ignore: boolean;
  /** SERVICE_[<port>_]ADVERTISE: `host`, `container` or `auto`; any other value counts as unset. */
  advertise?: 'auto' | 'host' | 'container';
  /** Lower-cased keys, CHECK_* included (for health checks). */
  meta: Record<string, string>;
}

const keyPattern = /^SERVICE_(?:(\d+)_)?(.+)$/;

export function parseMetadata(env: readonly string[] | null | undefined, labels: Readonly<Record<string, string>> | null | undefined): ContainerMetadata {
  const generic = new Map<string, string>();
  const perPort = new Map<number, Map<string, string>>();
  // Env first, labels second: the later write wins, so labels override env.
  const entries = [...(env ?? []).map(splitEnv), ...Object.entries(labels ?? {})];
  for (const entry of entries) {
    if (!entry) continue;
    const m = keyPattern.exec(entry[0]);
    if (!m?.[2]) continue;
    const key = m[2].toLowerCase();
    if (m[1] === undefined) {
      generic.set(key, entry[1]);
    } else {
      const port = Number(m[1]);
      const forPort = perPort.get(port) ?? new Map<string, string>();
      forPort.set(key, entry[1]);
      perPort.set(port, forPort);
    }
  }
  return { generic, perPort };
}

export function portMetadata(md: ContainerMetadata, port: number): PortMetadata {
  const specific = md.perPort.get(port) ?? new Map<string, string>();
  const merged = new Map([...md.generic, ...specific]);
  const meta: Record<string, string> = {};
  for (const [k, v] of merged) if (!reserved.has(k)) meta[k] = v;
  const tags = merged.get('tags');
  return {
    name: nonEmpty(merged.get('name')),
    nameFromPort: nonEmpty(specific.get('name')) !== undefined,
    tags: tags === undefined ? [] : splitTags(tags),
    id: nonEmpty(merged.get('id')),
    ignore: (merged.get('ignore') ?? '') !== '',
    ...advertiseKey(specific.get('advertise'), md.generic.get('advertise')),
    meta,
  };
}

const ADVERTISE_VALUES = new Set(['auto', 'host', 'container']);

/** The first valid of the port's key and the container's: a misspelt value counts as unset. */
function advertiseKey(...values: Array<string | undefined>): Pick<PortMetadata, 'advertise'> {
  const v = values.map((x) => x?.trim().toLowerCase()).find((x) => x !== undefined && ADVERTISE_VALUES.has(x));
  return v === undefined ? {} : { advertise: v as NonNullable<PortMetadata['advertise']> };
}

/** A container-level key (SERVICE_NETWORK, SERVICE_PORTS): never port-specific. */
export function containerKey(md: ContainerMetadata, key: 'network' | 'ports'): string | undefined {
  return nonEmpty(md.generic.get(key));
}

/** Comma list where `\,` is a literal comma; items are trimmed and empty ones dropped. */
export function splitTags(value: string): string[] {
  const out: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '\\' && value[i + 1] === ',') {
      current += ',';
      i++;
    } else if (ch === ',') {
      out.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  out.push(current);
  return out.map((t) => t.trim()).filter((t) => t !== '');
}

function splitEnv(entry: string): [string, string] | undefined {
  const eq = entry.indexOf('=');
  return eq < 0 ? undefined : [entry.slice(0, eq), entry.slice(eq + 1)];
}

function nonEmpty(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t ? t : undefined;
}
