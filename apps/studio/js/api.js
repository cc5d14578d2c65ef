// The server's own A1111 API (/sdapi/v1), nothing else. Errors become exceptions carrying the server's
// one-line "detail" (docs/api.md), so the page can show them.
const BASE = '/sdapi/v1';

export class ApiError extends Error {}

async function call(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(BASE + path, init);
  } catch (e) {
    throw new ApiError(`${path}: the server cannot be reached (${e.message})`);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!res.ok) {
    const detail = data && typeof data === 'object' ? data.detail || data.error : text;
    throw new ApiError(`${path}: ${res.status} ${detail || res.statusText}`);
  }
  return data;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body ?? {});

// A base64 PNG from the API as a data: URL, and back.
export const dataUrl = (b64) => (b64.startsWith('data:') ? b64 : 'data:image/png;base64,' + b64);
export const base64Of = (url) => url.slice(url.indexOf(',') + 1);
