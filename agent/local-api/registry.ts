import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { NODE_MAINTENANCE_CHECK_ID, SERVICE_MAINTENANCE_CHECK_PREFIX } from '../../shared/check-ids.js';
import type { CheckStatus, ServiceCheck, ServiceInstance } from '../../shared/model.js';
import { HttpError } from '../../shared/http-error.js';
import type { Maintenance, MaintenanceOutcome } from '../../shared/protocol.js';
import { runProbe, type ProbeResult } from '../checks/probes.js';
import type { ProbeDefinition } from '../checks/definitions.js';
import { MAX_CHECKS_PER_SERVICE, type CheckDefinition, type ServiceDefinition } from './definitions.js';
import { localApiErrors } from './errors.js';

/**
 * What this host's applications and operators told the local API: services registered beside
 * Docker's, checks (TTL, HTTP, TCP; of a registered service, of a container's service, or of the
 * node), and maintenance (of the node, of any service; set here or by the aggregator's drain
 * through the uplink, so the registry exists without --local-api too). The agent publishes `services()` beside
 * the containers' and passes every service through `overlay()`, so a check or maintenance set
 * here lands on a container's service too; `nodeChecks()` go into the node's registration.
 */

/** Consul's default maintenance reasons (agent/agent.go). */
export const DEFAULT_NODE_MAINT_REASON = 'Maintenance mode is enabled for this node, but no reason was provided. This is a default message.';
export const DEFAULT_SERVICE_MAINT_REASON = 'Maintenance mode is enabled for this service, but no reason was provided. This is a default message.';

/** A check and its latest result. */
interface Slot {
  definition: CheckDefinition;
  status: CheckStatus;
  output: string;
  timer: NodeJS.Timeout | undefined;
  deregisterTimer: NodeJS.Timeout | undefined;
  /** Bumped when the slot goes: a probe in flight for a dropped slot is ignored. */
  dropped: boolean;
}

/** The registry's state as the data dir keeps it. */
export interface RegistryState {
  services: ServiceDefinition[];
  checks: Array<{ definition: CheckDefinition; status: CheckStatus; output: string }>;
  maintenance: { node?: string; services: Record<string, string> };
}

export interface RegistryOptions {
  /** Something published changed: the agent re-reads services(), overlay() and nodeChecks(). */
  onChange: () => void;
  /** The state changed (also a TTL refresh that changed nothing published): the data dir writes it. */
  onState?: (state: RegistryState) => void;
  logger: Logger;
  random?: () => number;
}

/** Within this long of a probed check appearing comes its first probe (with jitter), not a whole interval later. */
const FIRST_PROBE_WITHIN_MS = 1000;

export class Registry {
  readonly #o: RegistryOptions;
  readonly #random: () => number;
  readonly #services = new Map<string, ServiceDefinition>();
  readonly #checks = new Map<string, Slot>();
  #nodeMaintenance: string | undefined;
  readonly #serviceMaintenance = new Map<string, string>();

  constructor(o: RegistryOptions) {
    this.#o = o;
    this.#random = o.random ?? Math.random;
  }

  /** Takes back a state from the data dir (TTL clocks start again now, as Consul's do on restore). */
  restore(state: RegistryState): void {
    for (const s of state.services) this.#services.set(s.id, s);
    for (const c of state.checks) this.#addCheck(c.definition, c.status, c.output);
    this.#nodeMaintenance = state.maintenance.node;
    for (const [id, reason] of Object.entries(state.maintenance.services)) this.#serviceMaintenance.set(id, reason);
    this.#o.onChange();
  }

  has(serviceId: string): boolean {
    return this.#services.has(serviceId);
  }

  service(id: string): ServiceDefinition | undefined {
    return this.#services.get(id);
  }

  /** Consul's register: the service replaces one of its ID; its checks are added (all replaced with ?replace-existing-checks). */
  registerService(service: ServiceDefinition, checks: readonly CheckDefinition[], replaceExistingChecks: boolean): void {
    const kept = replaceExistingChecks ? [] : [...this.#checks.values()].filter((s) => s.definition.serviceId === service.id && !checks.some((c) => c.checkId === s.definition.checkId));
    if (kept.length + checks.length > MAX_CHECKS_PER_SERVICE) throw localApiErrors.tooManyChecks(service.id, MAX_CHECKS_PER_SERVICE);
    if (replaceExistingChecks) for (const [id, slot] of this.#checks) if (slot.definition.serviceId === service.id) this.#dropCheck(id);
    this.#services.set(service.id, service);
    for (const c of checks) this.#addCheck(c, c.initialStatus, '');
    this.#changed();
  }

  /** Removes a registered service with its checks and maintenance. */
  deregisterService(id: string): void {
    if (!this.#services.delete(id)) throw localApiErrors.unknownService(id);
    for (const [checkId, slot] of this.#checks) if (slot.definition.serviceId === id) this.#dropCheck(checkId);
    this.#serviceMaintenance.delete(id);
    this.#changed();
  }

  /** A check of a service of this host (`exists` tells whether a container has it) or of the node. */
  registerCheck(check: CheckDefinition, exists: (serviceId: string) => boolean): void {
    const sid = check.serviceId;
    if (sid !== '' && !exists(sid)) throw localApiErrors.badRequest(`ServiceID "${sid}" does not exist`);
    const others = [...this.#checks.values()].filter((s) => s.definition.serviceId === sid && s.definition.checkId !== check.checkId);
    if (sid !== '' && others.length >= MAX_CHECKS_PER_SERVICE) throw localApiErrors.tooManyChecks(sid, MAX_CHECKS_PER_SERVICE);
    this.#addCheck(check, check.initialStatus, '');
    this.#changed();
  }

  deregisterCheck(checkId: string): void {
    if (!this.#checks.has(checkId)) throw localApiErrors.unknownCheck(checkId);
    this.#dropCheck(checkId);
    this.#changed();
  }

  /** pass/warn/fail/update of a TTL check: the status and output, and its TTL starts again. */
  updateTtl(checkId: string, status: CheckStatus, output: string): void {
    const slot = this.#checks.get(checkId);
    if (slot?.definition.kind !== 'ttl') throw localApiErrors.notTtl(checkId);
    this.#armTtl(checkId, slot);
    this.#record(slot, status, output.slice(0, 4096));
    this.#o.onState?.(this.state());
  }

  /** Service maintenance on (reason) or off (undefined); `exists` tells whether this host has the service at all. */
  setServiceMaintenance(id: string, reason: string | undefined, exists: boolean): void {
    if (!exists && !this.#services.has(id)) throw localApiErrors.unknownService(id);
    if (reason === undefined) this.#serviceMaintenance.delete(id);
    else this.#serviceMaintenance.set(id, reason || DEFAULT_SERVICE_MAINT_REASON);
    this.#changed();
  }

  setNodeMaintenance(reason: string | undefined): void {
    this.#nodeMaintenance = reason === undefined ? undefined : reason || DEFAULT_NODE_MAINT_REASON;
    this.#changed();
  }

  /**
   * Maintenance the aggregator asks for (its drain, through the uplink), set as the local API's
   * endpoints set it; `exists` tells whether this host has a service. Refused with Consul's text
   * for a service it does not have.
   */
  applyMaintenance(m: Pick<Maintenance, 'service' | 'enable' | 'reason'>, exists: (serviceId: string) => boolean): MaintenanceOutcome {
    const reason = m.enable ? m.reason : undefined;
    try {
      if (m.service === undefined) this.setNodeMaintenance(reason);
      else this.setServiceMaintenance(m.service, reason, exists(m.service));
    } catch (err) {
      if (err instanceof HttpError) return { ok: false, error: err.message };
      throw err;
    }
    return { ok: true };
  }

  get nodeInMaintenance(): boolean {
    return this.#nodeMaintenance !== undefined;
  }

  /** The registered services as the wire carries them; '' addresses become the node's, which the wire needs. */
  services(nodeAddress: string): ServiceInstance[] {
    return [...this.#services.values()].map((s) => ({
      id: s.id,
      name: s.name,
      tags: s.tags,
      meta: s.meta,
      address: s.address || nodeAddress,
      port: s.port,
      protocol: 'tcp',
      containerId: '',
      containerName: '',
      image: '',
      checks: [],
      ...(s.weights ? { weights: s.weights } : {}),
      ...(s.taggedAddresses ? { taggedAddresses: s.taggedAddresses } : {}),
    }));
  }

  /** Any service of this host with the checks registered for it here and its maintenance check. */
  overlay(s: ServiceInstance): ServiceInstance {
    // Every service passes through here on every delta: a host with none of this pays nothing.
    if (this.#checks.size === 0 && this.#serviceMaintenance.size === 0) return s;
    const own = [...this.#checks.values()].filter((slot) => slot.definition.serviceId === s.id).map((slot) => wireCheck(slot));
    const reason = this.#serviceMaintenance.get(s.id);
    const maintenance = reason === undefined ? [] : [maintenanceCheck(`${SERVICE_MAINTENANCE_CHECK_PREFIX}${s.id}`, 'Service Maintenance Mode', reason)];
    if (own.length === 0 && maintenance.length === 0) return s;
    return { ...s, checks: [...s.checks, ...own, ...maintenance].slice(0, 16) };
  }

  /** Node checks: those registered without a ServiceID, and `_node_maintenance`. */
  nodeChecks(): ServiceCheck[] {
    const own = [...this.#checks.values()].filter((slot) => slot.definition.serviceId === '').map((slot) => wireCheck(slot));
    const reason = this.#nodeMaintenance;
    return [...(reason === undefined ? [] : [maintenanceCheck(NODE_MAINTENANCE_CHECK_ID, 'Node Maintenance Mode', reason)]), ...own].slice(0, 16);
  }

  state(): RegistryState {
    return {
      services: [...this.#services.values()],
      checks: [...this.#checks.values()].map((s) => ({ definition: s.definition, status: s.status, output: s.output })),
      maintenance: { ...(this.#nodeMaintenance === undefined ? {} : { node: this.#nodeMaintenance }), services: Object.fromEntries(this.#serviceMaintenance) },
    };
  }

  /** Stops every TTL clock and probe. */
  stop(): void {
    for (const id of [...this.#checks.keys()]) this.#dropCheck(id);
  }

  #changed(): void {
    this.#o.onChange();
    this.#o.onState?.(this.state());
  }

  #addCheck(definition: CheckDefinition, status: CheckStatus, output: string): void {
    if (this.#checks.has(definition.checkId)) this.#dropCheck(definition.checkId);
    const slot: Slot = { definition, status, output, timer: undefined, deregisterTimer: undefined, dropped: false };
    this.#checks.set(definition.checkId, slot);
    if (definition.kind === 'ttl') this.#armTtl(definition.checkId, slot);
    else this.#scheduleProbe(slot, this.#random() * Math.min(definition.intervalMs, FIRST_PROBE_WITHIN_MS));
    this.#trackCritical(slot);
  }

  #dropCheck(checkId: string): void {
    const slot = this.#checks.get(checkId);
    if (!slot) return;
    slot.dropped = true;
    clearTimeout(slot.timer);
    clearTimeout(slot.deregisterTimer);
    this.#checks.delete(checkId);
  }

  /** Consul's CheckTTL: no update within the TTL turns the check critical, keeping the last output after the prefix. */
  #armTtl(checkId: string, slot: Slot): void {
    clearTimeout(slot.timer);
    slot.timer = setTimeout(() => {
      if (slot.dropped) return;
      this.#o.logger.info({ check: checkId }, 'TTL check expired');
      this.#record(slot, 'critical', slot.output === '' ? 'TTL expired' : `TTL expired (last output before timeout follows): ${slot.output}`.slice(0, 4096));
      this.#o.onState?.(this.state());
    }, slot.definition.intervalMs);
  }

  #scheduleProbe(slot: Slot, delayMs: number): void {
    slot.timer = setTimeout(() => {
      const started = Date.now();
      void runProbe(probeOf(slot.definition)).then((result: ProbeResult) => {
        if (slot.dropped) return;
        this.#record(slot, result.status, result.output);
        this.#scheduleProbe(slot, Math.max(0, started + slot.definition.intervalMs * (0.95 + 0.1 * this.#random()) - Date.now()));
      });
    }, delayMs);
  }

  /** Publishes a result only when it changed: one delta per real change. */
  #record(slot: Slot, status: CheckStatus, output: string): void {
    if (slot.status === status && slot.output === output) return;
    if (slot.status !== status) this.#o.logger.info({ check: slot.definition.checkId, from: slot.status, to: status, output }, `check ${status}`);
    slot.status = status;
    slot.output = output;
    this.#trackCritical(slot);
    this.#o.onChange();
  }

  /** DeregisterCriticalServiceAfter: a registered service whose check stays critical that long is deregistered. */
  #trackCritical(slot: Slot): void {
    const after = slot.definition.deregisterAfterMs;
    const sid = slot.definition.serviceId;
    if (slot.status !== 'critical' || after === undefined || !this.#services.has(sid)) {
      clearTimeout(slot.deregisterTimer);
      slot.deregisterTimer = undefined;
      return;
    }
    slot.deregisterTimer ??= setTimeout(() => {
      if (slot.dropped || !this.#services.has(sid)) return;
      this.#o.logger.warn({ service: sid, check: slot.definition.checkId, afterMs: after }, 'check critical past DeregisterCriticalServiceAfter: service deregistered');
      this.deregisterService(sid);
    }, after);
  }
}

/** The wire's check ID is short and unique within a service; Consul's CheckID travels beside it. */
function wireId(checkId: string): string {
  return checkId.length <= 64 ? checkId : `c-${createHash('sha1').update(checkId).digest('hex').slice(0, 40)}`;
}

function wireCheck(slot: Slot): ServiceCheck {
  const d = slot.definition;
  return {
    id: wireId(d.checkId),
    checkId: d.checkId,
    name: d.name,
    type: d.kind,
    status: slot.status,
    output: slot.output,
    notes: d.notes,
    interval: d.kind === 'ttl' ? '' : d.intervalText,
    timeout: d.timeoutText,
  };
}

function maintenanceCheck(checkId: string, name: string, reason: string): ServiceCheck {
  return { id: wireId(checkId), checkId, name, type: 'maintenance', status: 'critical', output: '', notes: reason.slice(0, 4096) };
}

/** An HTTP or TCP check as the container checks' prober runs it. */
function probeOf(d: CheckDefinition): ProbeDefinition {
  const timing = { intervalMs: d.intervalMs, timeoutMs: d.timeoutMs, initialStatus: d.initialStatus, tlsSkipVerify: d.http?.tlsSkipVerify ?? false };
  if (d.tcp) return { id: 'tcp', target: d.tcp, path: '', method: '', ...timing };
  const url = new URL(d.http!.url);
  const secure = url.protocol === 'https:';
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { id: secure ? 'https' : 'http', target: { address: host, port: Number(url.port) || (secure ? 443 : 80) }, path: `${url.pathname}${url.search}`, method: d.http!.method, ...timing };
}
