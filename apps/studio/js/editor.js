// The mask editor: a canvas over the picked image, in the image's own pixels, painted with the pointer
// (mouse, pen, touch). Painted pixels are what Inpaint repaints; the mask sent to the server is white on black.
const $ = (id) => document.getElementById(id);

export class MaskEditor {
  constructor() {
    this.canvas = $('mask');
    this.ctx = this.canvas.getContext('2d', { willReadFrequently: true });
    this.erasing = false;
    this.drawing = false;
    this.painted = false;
    this.last = null;
    const c = this.canvas;
    c.addEventListener('pointerdown', (e) => this.down(e));
    c.addEventListener('pointermove', (e) => this.move(e));
    for (const t of ['pointerup', 'pointercancel', 'pointerleave']) c.addEventListener(t, () => this.up());
    $('eraser').addEventListener('click', () => {
      this.erasing = !this.erasing;
      $('eraser').setAttribute('aria-pressed', String(this.erasing));
    });
    $('clear-mask').addEventListener('click', () => this.clear());
    $('invert-mask').addEventListener('click', () => this.invert());
  }

  // A new picture: the mask takes its size and starts empty.
  reset(width, height) {
    this.canvas.width = width;
    this.canvas.height = height;
    this.clear();
  }

  clear() {
    this.ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    this.painted = false;
  }

  invert() {
    const { width, height } = this.canvas;
    const img = this.ctx.getImageData(0, 0, width, height);
    const d = img.data;
    for (let i = 0; i < d.length; i += 4) {
      const on = d[i + 3] < 128;
      d[i] = 255; d[i + 1] = 45; d[i + 2] = 120; d[i + 3] = on ? 255 : 0;
    }
    this.ctx.putImageData(img, 0, 0);
    this.painted = true;
  }

  point(e) {
    const r = this.canvas.getBoundingClientRect();
    return { x: ((e.clientX - r.left) / r.width) * this.canvas.width,
             y: ((e.clientY - r.top) / r.height) * this.canvas.height };
  }

  down(e) {
    if (e.button !== 0 && e.pointerType === 'mouse') return;
    this.canvas.setPointerCapture?.(e.pointerId);
    this.drawing = true;
    this.last = this.point(e);
    this.stroke(this.last, this.last);
    e.preventDefault();
  }

  move(e) {
    if (!this.drawing) return;
    const p = this.point(e);
    this.stroke(this.last, p);
    this.last = p;
  }

  up() {
    this.drawing = false;
    this.last = null;
  }

  // One brush segment; the brush size is in the picture's pixels.
  stroke(a, b) {
    const ctx = this.ctx;
    ctx.globalCompositeOperation = this.erasing ? 'destination-out' : 'source-over';
    ctx.strokeStyle = ctx.fillStyle = '#ff2d78';
    ctx.lineWidth = Number($('brush').value);
    ctx.lineCap = ctx.lineJoin = 'round';
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x + 0.01, b.y);
    ctx.stroke();
    ctx.globalCompositeOperation = 'source-over';
    if (!this.erasing) this.painted = true;
  }

  // Whether any pixel is marked.
  empty() {
    const { width, height } = this.canvas;
    const d = this.ctx.getImageData(0, 0, width, height).data;
    for (let i = 3; i < d.length; i += 4) if (d[i] >= 128) return false;
    return true;
  }

  // The mask as a PNG data URL: white where painted, black elsewhere (A1111's img2img `mask`).
  toPng() {
    const { width, height } = this.canvas;
    const src = this.ctx.getImageData(0, 0, width, height).data;
    const out = document.createElement('canvas');
    out.width = width;
    out.height = height;
    const octx = out.getContext('2d');
    const img = octx.createImageData(width, height);
    for (let i = 0; i < src.length; i += 4) {
      const v = src[i + 3] >= 128 ? 255 : 0;
      img.data[i] = img.data[i + 1] = img.data[i + 2] = v;
      img.data[i + 3] = 255;
    }
    octx.putImageData(img, 0, 0);
    return out.toDataURL('image/png');
  }
}
