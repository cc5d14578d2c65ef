// LoRA: a picker (a checkbox and a weight slider per LoRA, kept in step with the prompt's <lora:name:w> tags)
// and autocompletion of "<lora:" in the prompt from the server's LoRA list.
const $ = (id) => document.getElementById(id);
const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const tagRe = (name) => new RegExp(`\\s*<lora:${escapeRe(name)}:([-0-9.]+)>`, 'g');

export class Loras {
  constructor(names) {
    this.names = names;
    this.prompt = $('prompt');
    this.list = $('lora-ac');
    this.active = -1;
    this.rows = new Map();
    if (names.length) this.buildPicker();
    this.prompt.addEventListener('input', () => { this.sync(); this.suggest(); });
    this.prompt.addEventListener('keydown', (e) => this.key(e));
    this.prompt.addEventListener('blur', () => setTimeout(() => this.close(), 150));
  }

  buildPicker() {
    $('loras').hidden = false;
    const box = $('lora-list');
    this.names.forEach((name, i) => {
      const row = document.createElement('div');
      row.className = 'lora-row';
      row.innerHTML = `<input type="checkbox" id="lora-on-${i}"><label for="lora-on-${i}"></label>` +
        `<output id="lora-w-out-${i}">1</output>` +
        `<input type="range" id="lora-w-${i}" min="0" max="2" step="0.05" value="1" class="wide" style="grid-column:1/-1">`;
      row.querySelector('label').textContent = name;
      const weight = row.querySelector('input[type=range]');
      weight.setAttribute('aria-label', `Weight of ${name}`);
      const on = row.querySelector('input[type=checkbox]');
      on.addEventListener('change', () => this.setTag(name, on.checked ? weight.value : null));
      weight.addEventListener('input', () => {
        row.querySelector('output').textContent = weight.value;
        if (on.checked) this.setTag(name, weight.value);
      });
      this.rows.set(name, { on, weight, out: row.querySelector('output') });
      box.append(row);
    });
  }

  // Adds, re-weights or (weight null) removes <lora:name:w> in the prompt.
  setTag(name, weight) {
    const p = this.prompt;
    let text = p.value.replace(tagRe(name), '');
    if (weight !== null) text = `${text.trimEnd()} <lora:${name}:${Number(weight)}>`;
    p.value = text.trimStart();
  }

  // The picker follows tags typed into the prompt.
  sync() {
    for (const [name, r] of this.rows) {
      const m = [...this.prompt.value.matchAll(tagRe(name))];
      r.on.checked = m.length > 0;
      if (m.length) r.weight.value = r.out.textContent = m[0][1];
    }
  }

  // The partial "<lora:na" just before the caret, or null.
  partial() {
    const before = this.prompt.value.slice(0, this.prompt.selectionStart);
    const m = /<lora:([^:>\s]*)$/.exec(before);
    return m ? { start: before.length - m[0].length, typed: m[1] } : null;
  }

  suggest() {
    const p = this.partial();
    const hits = p ? this.names.filter((n) => n.toLowerCase().includes(p.typed.toLowerCase())) : [];
    if (!hits.length) return this.close();
    this.list.replaceChildren(...hits.map((name, i) => {
      const li = document.createElement('li');
      li.id = `lora-ac-${i}`;
      li.setAttribute('role', 'option');
      li.textContent = name;
      li.addEventListener('mousedown', (e) => { e.preventDefault(); this.accept(name); });
      return li;
    }));
    this.list.hidden = false;
    this.prompt.setAttribute('aria-expanded', 'true');
    this.highlight(0);
  }

  highlight(i) {
    const items = [...this.list.children];
    this.active = (i + items.length) % items.length;
    items.forEach((li, k) => li.setAttribute('aria-selected', String(k === this.active)));
    this.prompt.setAttribute('aria-activedescendant', items[this.active].id);
  }

  accept(name) {
    const p = this.partial();
    if (!p) return this.close();
    const v = this.prompt.value, end = this.prompt.selectionStart;
    const tag = `<lora:${name}:1>`;
    this.prompt.value = v.slice(0, p.start) + tag + v.slice(end);
    this.prompt.selectionStart = this.prompt.selectionEnd = p.start + tag.length;
    this.close();
    this.sync();
  }

  close() {
    this.list.hidden = true;
    this.prompt.setAttribute('aria-expanded', 'false');
    this.prompt.removeAttribute('aria-activedescendant');
  }

  isOpen() { return !this.list.hidden; }

  key(e) {
    if (!this.isOpen()) return;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      this.highlight(this.active + (e.key === 'ArrowDown' ? 1 : -1));
      e.preventDefault();
    } else if ((e.key === 'Enter' && !e.ctrlKey && !e.metaKey) || e.key === 'Tab') {
      this.accept(this.list.children[this.active].textContent);
      e.preventDefault();
    } else if (e.key === 'Escape') {
      this.close();
      e.preventDefault();
      e.stopPropagation();
    }
  }
}
