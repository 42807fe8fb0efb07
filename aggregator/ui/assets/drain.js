/**
 * Drain and undrain (Consul's maintenance mode) of an instance or of a whole host, set on the
 * owning agent through PUT /v1/portolan/maintenance/:node. Draining asks for a reason first.
 * The button shows the state the catalog shows: a change arrives through the change stream
 * once the agent applied it, so until then the button only says that it is on its way.
 */
import { putJson } from './api.js';
import { el } from './dom.js';

/** Consul's maintenance check IDs (agent/agent.go serviceMaintCheckID, structs.NodeMaint). */
export const NODE_MAINTENANCE = '_node_maintenance';
export const serviceMaintenance = (serviceId) => `_service_maintenance:${serviceId}`;

/** How long a change the agent applied may take to show in the stream before the button gives up waiting. */
const SETTLE_MS = 10_000;

function button(className, text, type = 'button') {
  const b = el('button', className, text);
  b.type = type;
  return b;
}

export class DrainControl {
  /** Kept by its view across redraws, so a reason being typed survives a change of the instance. */
  el;
  #node;
  #serviceId;
  #toggle;
  #form;
  #reason;
  #error;
  #drained = false;
  /** The state asked for, until the stream shows it (or SETTLE_MS pass). */
  #pending;
  #timer;

  /** For the instance `serviceId` on `node`, or for the whole host without one. */
  constructor(node, serviceId) {
    this.#node = node;
    this.#serviceId = serviceId;
    const what = serviceId ? 'instance' : 'host';
    this.#toggle = button('drain-toggle', '');
    this.#reason = el('input', 'drain-reason');
    Object.assign(this.#reason, { type: 'text', placeholder: 'Reason (optional)', autocomplete: 'off' });
    this.#reason.setAttribute('aria-label', `Why drain this ${what}`);
    const cancel = button('link drain-cancel', 'Cancel');
    this.#form = el('form', 'drain-form', this.#reason, button('drain-confirm', `Drain ${what}`, 'submit'), cancel);
    this.#form.hidden = true;
    this.#error = el('p', 'drain-error');
    this.#error.setAttribute('role', 'alert');
    this.#error.hidden = true;
    this.el = el('div', 'drain', this.#toggle, this.#form, this.#error);
    this.el.dataset.drain = serviceId ? `${node}/${serviceId}` : node;

    this.#toggle.addEventListener('click', () => {
      if (this.#drained) return void this.#send(false);
      this.#form.hidden = !this.#form.hidden;
      if (!this.#form.hidden) this.#reason.focus();
    });
    cancel.addEventListener('click', () => (this.#form.hidden = true));
    this.#form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.#send(true, this.#reason.value.trim());
    });
    this.#draw();
  }

  /** The state the catalog shows now. */
  set drained(value) {
    this.#drained = value;
    if (this.#pending === value) this.#settle();
    this.#draw();
  }

  async #send(enable, reason = '') {
    this.#pending = enable;
    this.#error.hidden = true;
    this.#draw();
    const query = new URLSearchParams({ enable: String(enable) });
    if (this.#serviceId) query.set('service', this.#serviceId);
    if (reason) query.set('reason', reason);
    try {
      await putJson(`/v1/portolan/maintenance/${encodeURIComponent(this.#node)}?${query}`);
      this.#form.hidden = true;
      this.#reason.value = '';
      if (this.#drained === enable) this.#settle();
      else this.#timer = setTimeout(() => this.#settle(), SETTLE_MS);
    } catch (err) {
      this.#settle();
      this.#error.textContent = `Could not ${enable ? 'drain' : 'undrain'}: ${err.message}`;
      this.#error.hidden = false;
    }
    this.#draw();
  }

  #settle() {
    clearTimeout(this.#timer);
    this.#pending = undefined;
    this.#draw();
  }

  #draw() {
    const busy = this.#pending !== undefined;
    this.#toggle.disabled = busy;
    this.#toggle.textContent = busy ? (this.#pending ? 'Draining…' : 'Undraining…') : this.#drained ? 'Undrain' : 'Drain';
    this.#toggle.classList.toggle('undrain', this.#drained);
    this.el.dataset.state = this.#drained ? 'drained' : 'active';
  }
}
