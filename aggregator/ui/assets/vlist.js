/**
 * A scrolling list that keeps only the rows in view (plus a margin) in the DOM, so thousands
 * of rows cost what a screenful does. Every row has the same height.
 */

const OVERSCAN = 8;

export class VirtualList {
  #root;
  #spacer;
  #window;
  #rowHeight;
  #render;
  #empty;
  #rows = [];
  #frame = 0;

  /** render(row) builds one row's element; empty() says what to show when there are no rows. */
  constructor(root, { rowHeight, render, empty }) {
    this.#root = root;
    this.#rowHeight = rowHeight;
    this.#render = render;
    this.#empty = empty;
    this.#window = document.createElement('div');
    this.#window.className = 'window';
    this.#spacer = document.createElement('div');
    this.#spacer.className = 'spacer';
    this.#spacer.append(this.#window);
    root.append(this.#spacer);
    root.addEventListener('scroll', () => this.#schedule(), { passive: true });
    new ResizeObserver(() => this.#schedule()).observe(root);
  }

  setRows(rows) {
    this.#rows = rows;
    this.draw();
  }

  /** Rebuilds the visible rows now (the caller batches: it runs inside an animation frame). */
  draw() {
    const h = this.#rowHeight;
    const count = this.#rows.length;
    // Geometry is read before anything is written, so drawing forces no extra layout.
    const top = this.#root.scrollTop;
    const height = this.#root.clientHeight;
    this.#spacer.style.height = `${count * h}px`;
    if (count === 0) {
      this.#window.style.transform = '';
      this.#window.replaceChildren(Object.assign(document.createElement('div'), { className: 'empty', textContent: this.#empty() }));
      return;
    }
    const first = Math.max(0, Math.floor(top / h) - OVERSCAN);
    const last = Math.min(count, Math.ceil((top + height) / h) + OVERSCAN);
    this.#window.style.transform = `translateY(${first * h}px)`;
    this.#window.replaceChildren(...this.#rows.slice(first, last).map(this.#render));
  }

  #schedule() {
    if (this.#frame) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0;
      this.draw();
    });
  }
}
