import { ApiClient, runClient, type Output } from './api-client.js';
import { listServices, servicesOutputFlags } from './catalog-commands.js';
import { parseHostPort, UsageError, type FlagSpec, type FlagValue } from './flags.js';
import { joinHostPort } from '../shared/net-address.js';

/**
 * `portolan maint` and `portolan services`: small clients of an agent's local API (`portolan
 * agent --local-api`), as `consul maint` and `consul catalog services` are of a Consul agent.
 * They print for people and exit 0, 1 (the API said no, or cannot be reached) or 2 (usage).
 */

const localApiFlag: FlagSpec = {
  name: 'local-api',
  kind: 'string',
  env: 'PORTOLAN_LOCAL_API',
  default: '127.0.0.1:8500',
  help: "the agent's local API, HOST:PORT (its --local-api)",
};

export const maintFlags: FlagSpec[] = [
  localApiFlag,
  { name: 'enable', kind: 'boolean', env: 'PORTOLAN_MAINT_ENABLE', default: 'false', help: 'enter maintenance mode (the node, or --service)' },
  { name: 'disable', kind: 'boolean', env: 'PORTOLAN_MAINT_DISABLE', default: 'false', help: 'leave maintenance mode (the node, or --service)' },
  { name: 'service', kind: 'string', env: 'PORTOLAN_MAINT_SERVICE', help: 'a service ID of this host instead of the whole node' },
  { name: 'reason', kind: 'string', env: 'PORTOLAN_MAINT_REASON', help: 'why, shown as the maintenance check\'s Notes' },
];

export const servicesFlags: FlagSpec[] = [localApiFlag, ...servicesOutputFlags];

export async function maint(v: Record<string, FlagValue>, io: Output): Promise<number> {
  const [enable, disable] = [v.enable as boolean, v.disable as boolean];
  if (enable && disable) throw new UsageError('only one of --enable or --disable may be given');
  const service = v.service as string | undefined;
  const reason = v.reason as string | undefined;
  if (!enable && !disable && (service !== undefined || reason !== undefined)) throw new UsageError('--service and --reason go with --enable or --disable');
  return runClient(io, async () => {
    const api = localApi(v);
    if (!enable && !disable) return io.out(await maintenanceListing(api));
    const params = new URLSearchParams({ enable: String(enable) });
    if (reason !== undefined) params.set('reason', reason);
    const path = service === undefined ? '/v1/agent/maintenance' : `/v1/agent/service/maintenance/${encodeURIComponent(service)}`;
    await api.call('PUT', `${path}?${params}`);
    const what = service === undefined ? 'Node' : 'Service';
    io.out(`${what} ${enable ? 'entered' : 'left'} maintenance mode${service === undefined ? '' : `: ${service}`}\n`);
  });
}

export async function services(v: Record<string, FlagValue>, io: Output): Promise<number> {
  return runClient(io, () => listServices(localApi(v), v, io));
}

interface AgentCheck {
  CheckID: string;
  ServiceID: string;
  Notes: string;
}

/** As `consul maint` lists them: the node's maintenance, then each service's. */
async function maintenanceListing(api: ApiClient): Promise<string> {
  const [checks, self] = await Promise.all([
    api.json<Record<string, AgentCheck>>('/v1/agent/checks'),
    api.json<{ Config: { NodeName: string } }>('/v1/agent/self'),
  ]);
  const lines: string[] = [];
  for (const c of Object.values(checks)) {
    if (c.CheckID === '_node_maintenance') lines.unshift('Node:', `  Name:   ${self.Config.NodeName}`, `  Reason: ${c.Notes}`);
    else if (c.CheckID.startsWith('_service_maintenance:')) lines.push('Service:', `  ID:     ${c.ServiceID}`, `  Reason: ${c.Notes}`);
  }
  return lines.map((l) => `${l}\n`).join('');
}

/** The agent's local API named by --local-api; a bare port or a wildcard address is reached on loopback. */
function localApi(v: Record<string, FlagValue>): ApiClient {
  const { host, port } = parseHostPort('local-api', v['local-api'] as string);
  const reach = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  const base = new URL(`http://${joinHostPort(reach, port)}`);
  return new ApiClient(base, { unreachableHint: 'is the agent running with --local-api?' });
}
