// Settings: the generate form <-> one plain object <-> an A1111 request, and an image's parameters (the
// infotext as /png-info parses it) -> the same object, so Use settings and Vary share one mapping.
const $ = (id) => document.getElementById(id);

const int = (v, d) => (Number.isFinite(parseInt(v, 10)) ? parseInt(v, 10) : d);
const num = (v, d) => (Number.isFinite(parseFloat(v)) ? parseFloat(v) : d);

export const MAX_SEED = 4294967294;
export const randomSeed = () => Math.floor(Math.random() * MAX_SEED);

// The form as settings (numbers clamped to what the server accepts; sizes to multiples of 8).
export function readForm() {
  const size = (v) => Math.min(4096, Math.max(64, Math.round(int(v, 512) / 8) * 8));
  return {
    prompt: $('prompt').value,
    negative: $('negative').value,
    sampler: $('sampler').value,
    scheduler: $('scheduler').value,
    steps: Math.min(150, Math.max(1, int($('steps').value, 20))),
    cfg: num($('cfg').value, 7),
    seed: int($('seed').value, -1),
    width: size($('width').value),
    height: size($('height').value),
    batch: Math.min(16, Math.max(1, int($('batch').value, 1))),
    clip: Math.min(12, Math.max(1, int($('clip').value, 1))),
  };
}

function selectValue(select, value) {
  if (!value) return;
  const opt = [...select.options].find((o) => o.value === value || o.textContent === value ||
                                              o.value.toLowerCase() === value.toLowerCase());
  if (opt) select.value = opt.value;
}

export function writeForm(s) {
  if (s.prompt !== undefined) $('prompt').value = s.prompt;
  if (s.negative !== undefined) $('negative').value = s.negative;
  selectValue($('sampler'), s.sampler);
  selectValue($('scheduler'), s.scheduler || 'Automatic');
  for (const [id, key] of [['steps', 'steps'], ['cfg', 'cfg'], ['seed', 'seed'], ['width', 'width'],
                           ['height', 'height'], ['clip', 'clip']])
    if (s[key] !== undefined && s[key] !== null && !Number.isNaN(s[key])) $(id).value = String(s[key]);
  $('preset').value = [...$('preset').options].some((o) => o.value === `${$('width').value}x${$('height').value}`)
    ? `${$('width').value}x${$('height').value}` : '';
  $('prompt').dispatchEvent(new Event('input'));  // the LoRA picker follows the prompt
}

// /png-info's `parameters` (A1111 infotext keys) -> settings; missing keys stay undefined.
export function fromInfotext(p) {
  const s = { prompt: p.Prompt, negative: p['Negative prompt'], sampler: p.Sampler,
              scheduler: p['Schedule type'] };
  if (p.Steps) s.steps = int(p.Steps);
  if (p['CFG scale']) s.cfg = num(p['CFG scale']);
  if (p.Seed) s.seed = int(p.Seed);
  if (p['Clip skip']) s.clip = int(p['Clip skip']);
  const m = /^(\d+)x(\d+)$/.exec(p.Size || '');
  if (m) [s.width, s.height] = [int(m[1]), int(m[2])];
  return s;
}

// Settings -> the common part of a txt2img / img2img request.
export function toRequest(s) {
  const r = {
    prompt: s.prompt, negative_prompt: s.negative, sampler_name: s.sampler, steps: s.steps, cfg_scale: s.cfg,
    seed: s.seed, width: s.width, height: s.height, batch_size: 1, n_iter: s.batch ?? 1,
    override_settings: { CLIP_stop_at_last_layers: s.clip ?? 1 },
  };
  if (s.scheduler && s.scheduler !== 'Automatic') r.scheduler = s.scheduler;
  return r;
}
