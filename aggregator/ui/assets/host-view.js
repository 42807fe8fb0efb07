/**
 * /ui/host/:node: a host as the aggregator knows it (GET /v1/portolan/ui/host/:node: engine,
 * OS, agent, its connection, when it was lost and will be reaped), its node checks (GET
 * /v1/health/node/:node: the agent's liveness, maintenance) and its instances from the change
 * stream, with a drain button for the whole host.
 */
import { getJson, oneAtATime } from './api.js';
import { badge, clock, el, facts, link, relative, serviceHref } from './dom.js';
import { DrainControl, NODE_MAINTENANCE } from './drain.js';
import { checksHealth, liveHealth, nodeEntries } from './model.js';
import { checkList, tagList } from './service-view.js';

/** The host's details are fetched again this often while shown (its last-seen time moves on without a change). */
const INFO_REFRESH_MS = 5000;

const moment = (ms) => (ms ? `${clock(ms)} (${relative(ms)})` : undefined);

function state(info, node) {
  if (info?.External ?? node?.External) return badge('external');
  if (info?.Connected ?? node?.Connected) return badge('passing', 'connected');
  return info?.LostAt ? badge('critical', 'lost') : badge('critical', 'disconnected');
}

export class HostView {
  #root;
  #catalog;
  #node = '';
  #info;
  #infoError = '';
  #checks = [];
  #drain;
  #timer;
  #title = el('h2', '');
  #badges = el('span', 'health');
  #body = el('div', 'host-body');
  #dirty = true;
  /** The keys of the services it shows an instance of. */
  #shown = new Set();

  constructor(root, catalog) {
    this.#root = root;
    this.#catalog = catalog;
  }

  get title() {
    return this.#node;
  }

  open(node) {
    this.close();
    this.#node = node;
    this.#info = undefined;
    this.#infoError = '';
    this.#checks = [];
    this.#drain = new DrainControl(node);
    this.#title.textContent = node;
    this.#root.replaceChildren(el('div', 'view-head', this.#title, this.#badges, this.#drain.el), this.#body);
    this.#dirty = true;
    void this.#load();
    this.#timer = setInterval(() => void this.#load(), INFO_REFRESH_MS);
  }

  close() {
    clearInterval(this.#timer);
  }

  /** A stream event about the node or one of its services (a drain shows in both) fetches its details again. */
  changed(change) {
    const ours = Object.entries(change.services).some(([key, entries]) => this.#shown.has(key) || entries.some((e) => e.Node.Node === this.#node));
    if (ours || this.#node in change.nodes) {
      this.#dirty = true;
      void this.#load();
    }
  }

  /** Once a second: a lost host counts down to its reaping. */
  tick() {
    if (this.#info?.ReapAt) this.#dirty = true;
  }

  reloaded() {
    this.#dirty = true;
    void this.#load();
  }

  #load = oneAtATime(async () => {
    const node = this.#node;
    const path = encodeURIComponent(node);
    const [info, checks] = await Promise.allSettled([getJson(`/v1/portolan/ui/host/${path}`), getJson(`/v1/health/node/${path}`)]);
    if (node !== this.#node) return;
    this.#info = info.status === 'fulfilled' ? info.value : undefined;
    this.#infoError = info.status === 'rejected' ? info.reason.message : '';
    if (checks.status === 'fulfilled') this.#checks = checks.value.filter((c) => !c.ServiceID);
    this.#dirty = true;
    this.onUpdate?.();
  });

  /** Called once per animation frame while the view is shown; cheap when nothing changed. */
  render() {
    if (!this.#dirty) return;
    this.#dirty = false;
    const node = this.#catalog.nodes.get(this.#node);
    const info = this.#info;
    if (!node && !info) {
      this.#badges.replaceChildren();
      this.#drain.el.hidden = true;
      this.#body.replaceChildren(el('p', 'empty', this.#infoError ? `Unknown host: ${this.#infoError}` : 'Looking for this host…'));
      return;
    }
    const drained = this.#checks.some((c) => c.CheckID === NODE_MAINTENANCE);
    const external = info?.External ?? node?.External === true;
    this.#drain.drained = drained;
    this.#drain.el.hidden = external;
    this.#badges.replaceChildren(state(info, node), ...(drained ? [badge('drained')] : []));
    const entries = nodeEntries(this.#catalog, this.#node);
    this.#shown = new Set(entries.map((e) => e.Service.Service.toLowerCase()));
    const reap = info?.ReapAt ? (info.ReapAt > Date.now() ? relative(info.ReapAt) : 'due now') : undefined;
    this.#body.replaceChildren(
      ...(this.#infoError ? [el('p', 'muted', `Host details unavailable: ${this.#infoError}`)] : []),
      facts(
        [
          ['Address', node && el('span', 'mono', node.Address)],
          ['Engine', info?.EngineVersion && `Docker ${info.EngineVersion}`],
          ['OS', info && [info.OS, info.Arch].filter(Boolean).join(' ')],
          ['Kernel', info?.Kernel],
          ['Agent', (info?.AgentVersion ?? node?.Meta['portolan-agent-version']) && `portolan ${info?.AgentVersion ?? node.Meta['portolan-agent-version']}`],
          ['Protocol', info?.Protocol ?? undefined],
          ['Connected since', moment(info?.ConnectedSince)],
          ['Last seen', moment(info?.LastSeen ?? node?.LastSeen)],
          ['Held by', info?.Holder],
          ['Lost at', moment(info?.LostAt)],
          ['Reaped', reap && el('span', 'reap', `${reap} (${clock(info.ReapAt)})`)],
          ['Tagged addresses', node && el('span', 'mono wrap', Object.entries(node.TaggedAddresses).map(([k, v]) => `${k} ${v}`).join(', '))],
          ['Meta', node && el('span', 'mono wrap', Object.entries(node.Meta).map(([k, v]) => `${k}=${v}`).join(' '))],
        ],
        'facts host-facts',
      ),
      el('h3', '', 'Node checks'),
      this.#checks.length ? checkList(this.#checks, undefined, false) : el('p', 'muted', 'No node checks.'),
      el('h3', '', `Services (${entries.length})`),
      entries.length ? el('div', 'host-services', ...entries.map((e) => this.#serviceLine(e, node))) : el('p', 'muted', 'No services on this host.'),
    );
  }

  #serviceLine(entry, node) {
    const s = entry.Service;
    const line = el(
      'div',
      'host-service',
      link(serviceHref(s.Service), s.Service, 'name'),
      el('span', 'mono muted', s.ID),
      el('span', 'mono', s.Port ? `${s.Address}:${s.Port}` : s.Address),
      el('span', 'mono', entry.Container.Name),
      tagList(s.Tags) ?? el('span', ''),
      badge(liveHealth(checksHealth(entry.Checks), node)),
    );
    line.dataset.id = s.ID;
    return line;
  }
}
