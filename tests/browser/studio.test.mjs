// The studio driven in Debian's chromium by playwright-core, as a person (or a screen reader) would use it:
// every control is found by its role and accessible name only. Starts the real `nanobanana serve --port 0` on a
// models folder holding the demo checkpoint twice (one, two) and the demo LoRA, then covers: generate with
// progress seen, gallery, pick -> upscale (kept), pick -> inpaint with a brushed mask (pixels away from the mask
// unchanged; discarded), outpaint, vary, the job queue, use settings, download, PNG drop, model switch, stop
// (Esc) during a long job, both viewports without horizontal scrolling, and no console errors. The LoRA
// completion and picker, size presets and the seed dice first. Screenshots of each state go to OUT_DIR.
//   node studio.test.mjs NANOBANANA_BINARY DEMO_MODEL_DIR OUT_DIR
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [binary, demoDir, outDir] = process.argv.slice(2).map((p) => path.resolve(p));
const browserPath = process.env.NB_CHROMIUM || '/usr/bin/chromium';
fs.mkdirSync(outDir, { recursive: true });
const t0 = Date.now();
const log = (msg) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${msg}`);
function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
  log(`ok: ${what}`);
}

// ---- a models folder: the demo checkpoint as "one" and "two", its LoRA ----
const models = fs.mkdtempSync(path.join(os.tmpdir(), 'nb-studio-'));
fs.mkdirSync(path.join(models, 'Stable-diffusion'));
fs.mkdirSync(path.join(models, 'Lora'));
for (const name of ['one', 'two']) {
  fs.symlinkSync(path.join(demoDir, 'demo.safetensors'), path.join(models, 'Stable-diffusion', `${name}.safetensors`));
  fs.symlinkSync(path.join(demoDir, 'vocab.json'), path.join(models, 'Stable-diffusion', `${name}.vocab.json`));
  fs.symlinkSync(path.join(demoDir, 'merges.txt'), path.join(models, 'Stable-diffusion', `${name}.merges.txt`));
}
for (const f of fs.readdirSync(path.join(demoDir, 'lora')))
  fs.symlinkSync(path.join(demoDir, 'lora', f), path.join(models, 'Lora', f));

// ---- the server ----
const server = spawn(binary, ['serve', '--port', '0', '--models-dir', models, '--ckpt', 'one'],
                     { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' } });
let serverLog = '';
const port = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`the server did not start:\n${serverLog}`)), 30000);
  server.stderr.on('data', (d) => {
    serverLog += d;
    const m = /listening on http:\/\/[^:]+:(\d+)/.exec(serverLog);
    if (m) { clearTimeout(timer); resolve(Number(m[1])); }
  });
  server.on('exit', (code) => reject(new Error(`the server exited (${code}):\n${serverLog}`)));
});
const url = `http://127.0.0.1:${port}/`;
log(`server at ${url}`);

const browser = await chromium.launch({ executablePath: browserPath, headless: true });
const problems = [];
let page;
let shot = 0;
const screenshot = async (name) => {
  await page.screenshot({ path: path.join(outDir, `${String(++shot).padStart(2, '0')}-${name}.png`) });
};

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    else if (m.type() === 'warning') log(`console warning: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  await page.goto(url);

  const gallery = page.getByRole('region', { name: 'Gallery' });
  const thumbs = gallery.getByRole('img');
  const picked = page.getByRole('img', { name: /^Picked/ });
  const progress = page.getByRole('progressbar');
  const field = (name) => page.getByLabel(name, { exact: true });
  const button = (name) => page.getByRole('button', { name, exact: true });
  const noHorizontalScroll = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  const naturalWidth = (img) => img.evaluate((el) => el.naturalWidth);
  // A slider moved as a keyboard or pointer would leave it: the value set, then an input event.
  const slide = (locator, value) => locator.evaluate((el, v) => {
    el.value = v;
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, value);

  await page.getByRole('combobox', { name: 'Model' }).getByRole('option', { name: /^one\.safetensors/ }).waitFor({ state: 'attached' });
  await page.getByText('Ready').waitFor();
  await screenshot('start');
  check(await noHorizontalScroll(), 'no horizontal scrolling at 1280x800');

  // ---- form helpers: LoRA completion and picker, size presets, the seed dice ----
  await field('Prompt').fill('a red circle <lora:demo');
  await page.getByRole('option', { name: 'demo_monochrome' }).waitFor();
  await field('Prompt').press('Enter');
  check(await field('Prompt').inputValue() === 'a red circle <lora:demo_monochrome:1>', '<lora: completes a LoRA name');
  await page.getByText('LoRA', { exact: true }).click();
  check(await page.getByRole('checkbox', { name: 'demo_monochrome' }).isChecked(), 'the LoRA picker follows the prompt');
  await page.getByRole('checkbox', { name: 'demo_monochrome' }).uncheck();
  check(await field('Prompt').inputValue() === 'a red circle', 'unticking a LoRA removes its tag');
  await page.getByRole('combobox', { name: 'Size preset' }).selectOption({ label: '768 × 432 (16:9)' });
  check(await field('Width').inputValue() === '768' && await field('Height').inputValue() === '432', 'a size preset sets width and height');
  const seedBefore = await field('Seed').inputValue();
  await button('Random seed').click();
  check(await field('Seed').inputValue() !== seedBefore && await button('Lock seed').getAttribute('aria-pressed') === 'true',
        'the dice rolls a seed and locks it');
  await screenshot('form');

  // ---- generate: progress seen, the picture in the gallery with its seed ----
  await field('Prompt').fill('a red circle on a blue background');
  await field('Width').fill('64');
  await field('Height').fill('64');
  await field('Steps').fill('20');
  await field('Seed').fill('7');
  await page.getByRole('combobox', { name: 'Sampler' }).selectOption('Euler a');
  const progressSeen = progress.waitFor({ state: 'visible', timeout: 20000 });
  await button('Generate').click();
  await progressSeen;
  check(true, 'the progress bar shows while generating');
  await gallery.getByRole('img', { name: /seed 7\b/ }).first().waitFor({ timeout: 60000 });
  await progress.waitFor({ state: 'hidden' });
  check(await thumbs.count() === 1, 'the gallery holds the picture, alt text with "seed 7"');
  await screenshot('generated');

  // ---- pick -> upscale (Lanczos x2), kept ----
  await gallery.getByRole('button', { name: /Image 1, seed 7/ }).click();
  await page.getByRole('combobox', { name: 'Upscaler' }).selectOption('Lanczos');
  await page.getByRole('combobox', { name: 'Upscale factor' }).selectOption('2');
  await button('Upscale').click();
  await gallery.getByRole('img', { name: /upscaled/ }).waitFor({ timeout: 30000 });
  await picked.and(page.getByRole('img', { name: /upscaled/ })).waitFor();
  check(await naturalWidth(picked) === 128, 'pick -> Upscale x2 gives a 128 px picture, picked and staged');
  await page.getByRole('region', { name: 'Gallery' }).getByText('staged').waitFor();
  await button('Keep').click();
  check(await gallery.getByText('staged').count() === 0, 'Keep takes the staged result into the gallery');
  await screenshot('upscaled');

  // ---- pick -> inpaint with a brushed mask: pixels away from the mask unchanged; discarded ----
  await gallery.getByRole('button', { name: /Image 1, seed 7/ }).click();
  const mask = page.getByLabel('Mask', { exact: true });
  await slide(field('Brush size'), '6');
  const box = await mask.boundingBox();
  // A horizontal stroke through the middle (image rows ~29..35 of 64).
  await page.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.5);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5, { steps: 5 });
  await page.mouse.move(box.x + box.width * 0.8, box.y + box.height * 0.5, { steps: 5 });
  await page.mouse.up();
  await field('Prompt').fill('a green circle on a blue background');
  await page.getByRole('combobox', { name: 'Inpaint fill' }).selectOption('latent noise');
  await slide(page.getByLabel('Denoising strength'), '1');
  await screenshot('mask-brushed');
  await button('Inpaint').click();
  const inpainted = gallery.getByRole('img', { name: /inpainted/ });
  await inpainted.waitFor({ timeout: 60000 });
  // Compare in the page: decode both PNGs on canvases (lossless) and count differing pixels by row band.
  const diff = await page.evaluate(async ([a, b]) => {
    const pixels = async (src) => {
      const im = new Image();
      im.src = src;
      await im.decode();
      const c = document.createElement('canvas');
      c.width = im.naturalWidth;
      c.height = im.naturalHeight;
      const ctx = c.getContext('2d');
      ctx.drawImage(im, 0, 0);
      return ctx.getImageData(0, 0, c.width, c.height);
    };
    const [x, y] = [await pixels(a), await pixels(b)];
    let outside = 0, inside = 0;
    for (let row = 0; row < x.height; ++row)
      for (let col = 0; col < x.width; ++col) {
        const i = (row * x.width + col) * 4;
        const changed = [0, 1, 2].some((k) => x.data[i + k] !== y.data[i + k]);
        if (row < 12 || row >= 52) outside += changed;  // >= 14 px from the stroke's edge (blur 4)
        if (row >= 30 && row < 34 && col > 16 && col < 48) inside += changed;
      }
    return { outside, inside, size: [y.width, y.height] };
  }, [await gallery.getByRole('img', { name: /Image 1, seed 7/ }).getAttribute('src'), await inpainted.getAttribute('src')]);
  check(diff.size[0] === 64 && diff.size[1] === 64, 'the inpainted picture keeps its size');
  check(diff.outside === 0, `pixels away from the mask unchanged (${diff.outside} differ)`);
  check(diff.inside > 0, `the masked stroke was repainted (${diff.inside} pixels differ)`);
  await screenshot('inpainted');
  const before = await thumbs.count();
  await button('Discard').click();
  check(await thumbs.count() === before - 1, 'Discard drops the staged result');

  // ---- outpaint right by 32 ----
  await gallery.getByRole('button', { name: /Image 1, seed 7/ }).click();
  await field('Outpaint size').fill('32');
  await button('Outpaint right').click();
  await gallery.getByRole('img', { name: /outpainted right/ }).waitFor({ timeout: 60000 });
  check(await naturalWidth(picked) === 96, 'Outpaint right by 32 gives a 96x64 picture');
  await button('Keep').click();
  await screenshot('outpainted');

  // ---- vary: same settings, a new seed ----
  await gallery.getByRole('button', { name: /Image 1, seed 7/ }).click();
  await button('Vary').click();
  const variation = gallery.getByRole('img', { name: /variation/ });
  await variation.waitFor({ timeout: 60000 });
  check(!/seed 7\b/.test(await variation.getAttribute('alt')), `Vary makes a new seed (${await variation.getAttribute('alt')})`);

  // ---- two jobs at once: the second waits in the listed queue ----
  const count = await thumbs.count();
  await button('Generate').click();
  await button('Generate').click();
  await page.getByRole('list', { name: 'Queued jobs' }).getByText(/\(queued\)/).first().waitFor();
  check(true, 'a second job waits in the queue list');
  await page.waitForFunction((k) => document.querySelectorAll('#thumbs img').length === k + 2, count, { timeout: 60000 });
  await page.getByRole('list', { name: 'Queued jobs' }).getByRole('listitem').first().waitFor({ state: 'detached' });
  check(true, 'both queued jobs ran, the queue list is empty');

  // ---- use settings: the form comes back from the picture's parameters ----
  await field('Prompt').fill('something else entirely');
  await field('Steps').fill('3');
  await field('Seed').fill('123');
  await gallery.getByRole('button', { name: /Image 1, seed 7/ }).click();
  await button('Use settings').click();
  check(await field('Prompt').inputValue() === 'a red circle on a blue background', 'Use settings restores the prompt');
  check(await field('Steps').inputValue() === '20' && await field('Seed').inputValue() === '7',
        'Use settings restores steps and seed');
  await screenshot('use-settings');
  const [download] = await Promise.all([page.waitForEvent('download'), button('Download').click()]);
  check(/^nanobanana-1-seed-7\.png$/.test(download.suggestedFilename()), `Download saves ${download.suggestedFilename()}`);

  // ---- a PNG dropped on the page: its parameters are read (png-info) ----
  const src = await gallery.getByRole('img', { name: /Image 1, seed 7/ }).getAttribute('src');
  const dataTransfer = await page.evaluateHandle(async (dataUrl) => {
    const blob = await (await fetch(dataUrl)).blob();
    const dt = new DataTransfer();
    dt.items.add(new File([blob], 'dropped.png', { type: 'image/png' }));
    return dt;
  }, src);
  await page.dispatchEvent('body', 'drop', { dataTransfer });
  await gallery.getByRole('img', { name: /seed 7, dropped\.png/ }).waitFor({ timeout: 10000 });
  check((await page.getByText(/Steps: 20/).count()) > 0, 'a dropped PNG shows its parameters');
  await screenshot('png-dropped');

  // ---- model switch: the catalog entry gets its hash and family once loaded ----
  const model = page.getByRole('combobox', { name: 'Model' });
  await model.selectOption({ label: 'two.safetensors' });
  await page.waitForFunction(() => document.getElementById('model').value.startsWith('two.safetensors ['), null,
                             { timeout: 30000 });
  await page.getByText(/SD 1\.x · hash [0-9a-f]{10}/).waitFor();
  check(true, 'switching the model loads it (title with hash, family shown)');
  await screenshot('model-switched');

  // ---- stop (Esc) during a long job; Ctrl+Enter starts it ----
  await field('Width').fill('256');
  await field('Height').fill('256');
  await field('Steps').fill('150');
  const n = await thumbs.count();
  await field('Prompt').press('Control+Enter');
  await page.getByText(/step [1-9]\d* of 150/).waitFor({ timeout: 30000 });
  await page.getByRole('img', { name: 'Live preview' }).waitFor();
  await screenshot('long-job-running');
  const stopAt = Date.now();
  await page.keyboard.press('Escape');
  await progress.waitFor({ state: 'hidden', timeout: 30000 });
  await page.waitForFunction((k) => document.querySelectorAll('#thumbs img').length > k, n);
  await page.getByText(/: stopped, 1 image/).waitFor();
  check(!(await page.getByText(/step 150 of 150/).count()), `Esc stopped the 150-step job (${Date.now() - stopAt} ms)`);
  await screenshot('stopped');

  // ---- phone viewport ----
  await page.setViewportSize({ width: 390, height: 844 });
  await gallery.getByRole('button', { name: /Image 1, seed 7/ }).click();
  check(await noHorizontalScroll(), 'no horizontal scrolling at 390x844 with a picture picked');
  await screenshot('phone');
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.evaluate(() => window.scrollTo(0, 0));
  check(await noHorizontalScroll(), 'no horizontal scrolling at 1280x800 with a picture picked');
  await page.screenshot({ path: path.join(outDir, 'studio-1280x800.png') });

  check(problems.length === 0, `no console errors or failed requests${problems.length ? ':\n' + problems.join('\n') : ''}`);
  log(`passed; screenshots in ${outDir}`);
} catch (e) {
  if (page) await page.screenshot({ path: path.join(outDir, 'failure.png') }).catch(() => {});
  console.error(`FAILED: ${e.message}`);
  if (problems.length) console.error(problems.join('\n'));
  console.error(`server log (last lines):\n${serverLog.split('\n').slice(-15).join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  server.kill('SIGTERM');
  fs.rmSync(models, { recursive: true, force: true });
}
