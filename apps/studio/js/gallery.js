// The gallery: this session's pictures, newest last, each with its seed; picking one shows it (with the mask
// editor over it) and its full parameters. Edit results arrive "staged": kept or discarded from the details.
import { post, base64Of } from './api.js';

const $ = (id) => document.getElementById(id);

// Loads a data: URL to learn its pixel size.
function size(src) {
  return new Promise((resolve, reject) => {
    const im = new Image();
    im.onload = () => resolve({ width: im.naturalWidth, height: im.naturalHeight });
    im.onerror = () => reject(new Error('the picture cannot be decoded'));
    im.src = src;
  });
}

export class Gallery {
  constructor(editor, onPick) {
    this.items = [];
    this.picked = null;
    this.editor = editor;
    this.onPick = onPick;
    this.next = 1;
    $('keep').addEventListener('click', () => this.keep());
    $('discard').addEventListener('click', () => this.discard());
  }

  // Adds a picture (a PNG data URL). `params`: its infotext, or null to read it from the PNG (/png-info).
  async add(src, { params = null, seed = null, staged = false, pick = false, note = '', source = null } = {}) {
    let parsed = {};
    try {
      const r = await post('/png-info', { image: base64Of(src) });
      params = params ?? (r.info || '');
      parsed = r.parameters || {};
    } catch {
      params = params ?? '';
    }
    const { width, height } = await size(src);
    const item = { id: this.next++, src, params, parsed, width, height, staged, note, source,
                   seed: seed ?? (parsed.Seed !== undefined ? Number(parsed.Seed) : null) };
    this.items.push(item);
    this.render();
    if (pick) this.pick(item);
    return item;
  }

  label(item) {
    const seed = item.seed !== null && !Number.isNaN(item.seed) ? `, seed ${item.seed}` : '';
    return `Image ${item.id}${seed}${item.note ? `, ${item.note}` : ''}`;
  }

  render() {
    $('gallery-empty').hidden = this.items.length > 0;
    $('thumbs').replaceChildren(...this.items.map((item) => {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.setAttribute('aria-current', String(item === this.picked));
      const img = document.createElement('img');
      img.src = item.src;
      img.alt = this.label(item);
      const cap = document.createElement('span');
      cap.className = 'cap';
      cap.setAttribute('aria-hidden', 'true');
      cap.textContent = `${item.width}×${item.height}${item.seed !== null ? ` · ${item.seed}` : ''}`;
      b.append(img, cap);
      if (item.staged) {
        const badge = document.createElement('span');
        badge.className = 'badge';
        badge.textContent = 'staged';
        b.append(badge);
      }
      b.addEventListener('click', () => this.pick(item));
      li.append(b);
      return li;
    }));
  }

  pick(item) {
    // Picking another picture keeps a staged one (the choice was made by moving on).
    if (this.picked && this.picked !== item && this.picked.staged) this.picked.staged = false;
    this.picked = item;
    $('details').hidden = false;
    $('staging').hidden = !item.staged;
    const img = $('picked');
    img.src = item.src;
    img.alt = `Picked: ${this.label(item)}`;
    this.editor.reset(item.width, item.height);
    $('brush').max = String(Math.max(8, Math.round(Math.max(item.width, item.height) / 2)));
    $('brush').value = String(Math.max(2, Math.round(Math.max(item.width, item.height) / 12)));
    $('params').textContent = item.params || '(no parameters in this picture)';
    this.render();
    this.onPick?.(item);
  }

  keep() {
    if (!this.picked) return;
    this.picked.staged = false;
    $('staging').hidden = true;
    this.render();
  }

  discard() {
    const item = this.picked;
    if (!item) return;
    this.items = this.items.filter((i) => i !== item);
    this.picked = null;
    const back = item.source && this.items.includes(item.source) ? item.source : this.items.at(-1);
    if (back) this.pick(back);
    else {
      $('details').hidden = true;
      this.render();
    }
  }
}
