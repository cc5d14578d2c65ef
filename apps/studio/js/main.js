// The studio's wiring: the form, the job queue (one job at a time, in order, as the server runs them), live
// progress from /progress, and the picked image's actions (upscale, inpaint, outpaint, vary, use settings,
// download). Everything goes through the server's own /sdapi/v1 API.
import { get, post, dataUrl, base64Of } from './api.js';
import { readForm, writeForm, fromInfotext, toRequest, randomSeed } from './settings.js';
import { MaskEditor } from './editor.js';
import { Gallery } from './gallery.js';
import { Loras } from './lora.js';

const $ = (id) => document.getElementById(id);
const editor = new MaskEditor();
const gallery = new Gallery(editor);
let models = [];
let currentModel = null;

// ---- messages ----

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = false;
}
const clearError = () => { $('error').hidden = true; };
const say = (text) => { $('progress-text').textContent = text; };

// ---- progress ----

// fraction in 0..1, or null for "busy, no fraction" (loading a model, upscaling).
function setProgress(fraction, text) {
  const bar = $('progress');
  bar.hidden = false;
  bar.classList.toggle('indeterminate', fraction === null);
  if (fraction === null) {
    bar.removeAttribute('aria-valuenow');
  } else {
    const pct = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
    bar.setAttribute('aria-valuenow', String(pct));
    bar.querySelector('.fill').style.width = pct + '%';
  }
  bar.setAttribute('aria-valuetext', text);
  say(text);
}

function hideProgress(text) {
  $('progress').hidden = true;
  $('progress').querySelector('.fill').style.width = '0';
  $('preview').hidden = true;
  say(text);
}

// Polls /progress while a sampling job runs; returns a function that stops polling.
function watchProgress(label) {
  let live = true;
  const tick = async () => {
    if (!live) return;
    try {
      const p = await get('/progress');
      if (!live) return;
      const s = p.state || {};
      if (s.sampling_steps > 0) {
        const eta = p.eta_relative > 0 ? `, about ${Math.ceil(p.eta_relative)} s left` : '';
        const of = running?.images > 1 ? ` (image ${s.job_no + 1} of ${running.images})` : '';
        setProgress(p.progress, `${label}: step ${s.sampling_step} of ${s.sampling_steps}${of}${eta}`);
      }
      if (p.current_image) {
        $('preview').src = dataUrl(p.current_image);
        $('preview').hidden = false;
      }
    } catch {
      // a missed poll is not an error: the next one tries again
    }
    if (live) setTimeout(tick, 250);
  };
  setTimeout(tick, 100);
  return () => { live = false; };
}

// ---- the job queue ----

const queue = [];
let running = null;

function renderQueue() {
  const items = [];
  if (running) {
    const li = document.createElement('li');
    li.textContent = `${running.label} (running)`;
    items.push(li);
  }
  queue.forEach((job) => {
    const li = document.createElement('li');
    li.textContent = `${job.label} (queued)`;
    const rm = document.createElement('button');
    rm.type = 'button';
    rm.textContent = 'Remove';
    rm.setAttribute('aria-label', `Remove ${job.label} from the queue`);
    rm.addEventListener('click', () => { queue.splice(queue.indexOf(job), 1); renderQueue(); });
    li.append(rm);
    items.push(li);
  });
  $('queue').replaceChildren(...items);
}

let jobCount = 0;
function enqueue(label, run, { sampling = true, images = 1 } = {}) {
  queue.push({ label: `Job ${++jobCount}: ${label}`, run, sampling, images });
  renderQueue();
  // On a phone the progress panel is below the form: bring it into view (a laptop shows it already).
  const panel = $('job-title').parentElement;
  if (panel.getBoundingClientRect().top > window.innerHeight) panel.scrollIntoView({ block: 'start' });
  if (!running) pump();
}

async function pump() {
  while (queue.length) {
    running = queue.shift();
    renderQueue();
    clearError();
    $('stop').disabled = !running.sampling;
    $('skip').disabled = !running.sampling;
    setProgress(running.sampling ? 0 : null, `${running.label}: starting`);
    const stop = running.sampling ? watchProgress(running.label) : () => {};
    let done = 'Done';
    try {
      done = (await running.run()) || 'Done';
      if (running.stopped) done = `stopped, ${done}`;
    } catch (e) {
      showError(e.message);
      done = 'Failed';
    } finally {
      stop();
    }
    // The bar stays at its end a moment: a fast job (the demo model's take well under a second) is seen to finish.
    $('stop').disabled = $('skip').disabled = true;
    if (done !== 'Failed') setProgress(1, `${running.label}: ${done}`);
    if (!queue.length) await new Promise((resolve) => setTimeout(resolve, 400));
    hideProgress(`${running.label}: ${done}`);
    // A1111 hashes a checkpoint when it first loads it: the catalog learns its hash and family then.
    if (running.sampling && currentModel && !currentModel.hash) await loadModels().catch(() => {});
    running = null;
    $('stop').disabled = $('skip').disabled = true;
    renderQueue();
  }
}

// Runs a txt2img / img2img request and puts its pictures in the gallery.
async function sample(endpoint, request, extra = {}) {
  const r = await post(endpoint, request);
  const info = typeof r.info === 'string' ? JSON.parse(r.info) : r.info || {};
  const images = r.images || [];
  let last = null;
  for (let i = 0; i < images.length; ++i)
    last = await gallery.add(dataUrl(images[i]), { params: info.infotexts?.[i] ?? null,
                                                   seed: info.all_seeds?.[i] ?? null, ...extra, pick: false });
  if (last && (extra.staged || !gallery.picked)) gallery.pick(last);
  return images.length === 1 ? `1 image (seed ${info.all_seeds?.[0]})` : `${images.length} images`;
}

// The seed for the next job: the Seed field when locked, else a new random one (shown in the field).
function nextSeed() {
  if ($('lock').getAttribute('aria-pressed') === 'true' && Number($('seed').value) >= 0) return Number($('seed').value);
  const seed = randomSeed();
  $('seed').value = String(seed);
  return seed;
}

function setLock(on) {
  $('lock').setAttribute('aria-pressed', String(on));
}

function generate() {
  const s = readForm();
  s.seed = nextSeed();
  const req = toRequest(s);
  const what = s.prompt.length > 40 ? s.prompt.slice(0, 40) + '…' : s.prompt;
  enqueue(`generate "${what}", ${s.width}×${s.height}, ${s.steps} steps`, () => sample('/txt2img', req),
          { images: s.batch });
}

// Stop: the server ends the running job at its next step and answers with the picture as it stands.
function stop() {
  if (!running?.sampling) return;
  running.stopped = true;
  say(`${running.label}: stopping…`);
  post('/interrupt').catch((e) => showError(e.message));
}

// ---- actions on the picked image ----

const picked = () => gallery.picked;
const mult8 = (v) => Math.max(8, Math.round(v / 8) * 8);

function editRequest(item, width, height) {
  const s = { ...readForm(), width, height, batch: 1 };
  s.seed = nextSeed();
  return { ...toRequest(s), init_images: [item.src], mask_blur: Number($('blur').value) || 0,
           denoising_strength: Number($('strength').value) };
}

function inpaint() {
  const item = picked();
  if (!item) return;
  if (editor.empty()) return showError('Paint the area to repaint on the Mask first.');
  const req = { ...editRequest(item, mult8(item.width), mult8(item.height)), mask: editor.toPng(),
                inpainting_fill: Number($('fill').value), inpaint_full_res: $('area').value === '1',
                inpaint_full_res_padding: Number($('padding').value) || 0 };
  enqueue(`inpaint image ${item.id}`, () => sample('/img2img', req, { staged: true, note: 'inpainted', source: item }));
}

function outpaint(side) {
  const item = picked();
  if (!item) return;
  const n = mult8(Number($('out-size').value) || 128);
  const grow = { left: [n, 0, 0, 0], up: [0, n, 0, 0], right: [0, 0, n, 0], down: [0, 0, 0, n] }[side];
  const width = item.width + grow[0] + grow[2], height = item.height + grow[1] + grow[3];
  const req = { ...editRequest(item, width, height), outpaint: grow };
  enqueue(`outpaint image ${item.id} ${side} by ${n}`,
          () => sample('/img2img', req, { staged: true, note: `outpainted ${side}`, source: item }));
}

function upscale() {
  const item = picked();
  if (!item) return;
  const upscaler = $('upscaler').value, factor = Number($('factor').value);
  enqueue(`upscale image ${item.id} ×${factor} (${upscaler})`, async () => {
    const r = await post('/extra-single-image', { image: base64Of(item.src), upscaler_1: upscaler,
                                                  upscaling_resize: factor });
    const up = await gallery.add(dataUrl(r.image), { seed: item.seed, staged: true, note: `upscaled ×${factor}`,
                                                      source: item, pick: true });
    return `${up.width}×${up.height}`;
  }, { sampling: false });
}

function vary() {
  const item = picked();
  if (!item) return;
  const s = { ...readForm(), ...definedOnly(fromInfotext(item.parsed)), batch: 1, seed: randomSeed() };
  enqueue(`vary image ${item.id}`, () => sample('/txt2img', toRequest(s), { note: 'variation' }));
}

const definedOnly = (o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

function useSettings() {
  const item = picked();
  if (!item) return;
  const s = definedOnly(fromInfotext(item.parsed));
  if (!Object.keys(s).length) return showError(`Image ${item.id} carries no parameters.`);
  writeForm(s);
  if (s.seed !== undefined) setLock(true);  // the restored seed makes the same picture again
  say(`Settings of image ${item.id} restored`);
}

function download() {
  const item = picked();
  if (!item) return;
  const a = document.createElement('a');
  a.href = item.src;
  a.download = `nanobanana-${item.id}${item.seed !== null ? '-seed-' + item.seed : ''}.png`;
  document.body.append(a);
  a.click();
  a.remove();
}

// ---- PNG files: dropped on the page or opened ----

function openPng(file) {
  if (!file || !(file.type === 'image/png' || file.name.toLowerCase().endsWith('.png')))
    return showError('Drop a PNG file to read its parameters.');
  const reader = new FileReader();
  reader.onload = async () => {
    try {
      const item = await gallery.add(reader.result, { note: file.name, pick: true });
      say(item.params ? `Read the parameters of ${file.name}` : `${file.name} carries no parameters`);
    } catch (e) {
      showError(`${file.name}: ${e.message}`);
    }
  };
  reader.readAsDataURL(file);
}

let dragDepth = 0;
window.addEventListener('dragenter', (e) => { e.preventDefault(); ++dragDepth; $('drop').hidden = false; });
window.addEventListener('dragleave', () => { if (--dragDepth <= 0) { dragDepth = 0; $('drop').hidden = true; } });
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => {
  e.preventDefault();
  dragDepth = 0;
  $('drop').hidden = true;
  openPng(e.dataTransfer?.files?.[0]);
});
$('open-png').addEventListener('change', (e) => { openPng(e.target.files[0]); e.target.value = ''; });

// ---- models ----

const fmtBytes = (n) => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GB` : `${(n / (1 << 20)).toFixed(1)} MB`);

function showModels(current) {
  const sel = $('model');
  sel.replaceChildren(...models.map((m) => new Option(m.title, m.title)));
  const m = models.find((x) => x.title === current || current.startsWith(x.title.split(' [')[0] + ' ['))
    ?? models.find((x) => x.title.split(' [')[0] === current);
  if (m) sel.value = m.title;
  currentModel = m ?? null;
  const parts = m ? [m.family, m.hash ? `hash ${m.hash}` : null, m.size_bytes ? fmtBytes(m.size_bytes) : null] : [];
  $('model-info').textContent = parts.filter(Boolean).join(' · ');
}

async function loadModels() {
  const [list, options] = await Promise.all([get('/sd-models'), get('/options')]);
  models = list;
  showModels(options.sd_model_checkpoint || '');
}

function switchModel() {
  const title = $('model').value;
  enqueue(`load model ${title.split(' [')[0]}`, async () => {
    setProgress(null, `Loading model ${title}…`);
    try {
      await post('/options', { sd_model_checkpoint: title });
    } finally {
      await loadModels();
    }
    return 'loaded';
  }, { sampling: false });
}

// ---- start ----

async function init() {
  const fill = (sel, items, value = (x) => x) => $(sel).replaceChildren(...items.map((x) => new Option(x, value(x))));
  const [samplers, schedulers, upscalers, loras] = await Promise.all([
    get('/samplers'), get('/schedulers'), get('/upscalers'), get('/loras'), loadModels()]);
  fill('sampler', samplers.map((s) => s.name));
  $('sampler').value = samplers.some((s) => s.name === 'Euler a') ? 'Euler a' : samplers[0]?.name;
  fill('scheduler', schedulers.map((s) => s.label));
  fill('upscaler', upscalers.map((u) => u.name).filter((n) => n !== 'None'));
  new Loras(loras.map((l) => l.name));
  const side = currentModel?.default_size;  // the model's own picture size (the demo model: 64)
  if (side) writeForm({ width: side, height: side });
}

$('gen').addEventListener('submit', (e) => { e.preventDefault(); generate(); });
$('stop').addEventListener('click', stop);
$('skip').addEventListener('click', () => post('/skip').catch((e) => showError(e.message)));
$('dice').addEventListener('click', () => { $('seed').value = String(randomSeed()); setLock(true); });
$('lock').addEventListener('click', () => setLock($('lock').getAttribute('aria-pressed') !== 'true'));
$('seed').addEventListener('input', () => setLock(true));  // a typed seed is meant to be used
$('preset').addEventListener('change', () => {
  const m = /^(\d+)x(\d+)$/.exec($('preset').value);
  if (m) [$('width').value, $('height').value] = [m[1], m[2]];
});
for (const id of ['width', 'height']) $(id).addEventListener('input', () => { $('preset').value = ''; });
$('strength').addEventListener('input', () => { $('strength-out').textContent = $('strength').value; });
$('model').addEventListener('change', switchModel);
$('inpaint').addEventListener('click', inpaint);
$('upscale').addEventListener('click', upscale);
$('vary').addEventListener('click', vary);
$('use').addEventListener('click', useSettings);
$('download').addEventListener('click', download);
document.querySelectorAll('[data-side]').forEach((b) => b.addEventListener('click', () => outpaint(b.dataset.side)));
document.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    generate();
  } else if (e.key === 'Escape' && running?.sampling) {
    e.preventDefault();
    stop();
  }
});

init().then(() => say('Ready'), (e) => showError(`The studio could not start: ${e.message}`));
