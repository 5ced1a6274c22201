// The server's HTTP API as the page uses it: JSON reads, streamed generations (server-sent events) and
// OpenAI-shaped errors. Every call carries the API key the user typed, as "Authorization: Bearer <key>".

const keyStorage = 'serving.playground.apiKey';

let apiKey = sessionStorage.getItem(keyStorage) ?? '';

export const hasKey = () => apiKey !== '';

export const currentKey = () => apiKey;

/// Kept for this tab only (sessionStorage): closing it forgets the key.
export function setKey(key) {
  apiKey = key.trim();
  if (apiKey) sessionStorage.setItem(keyStorage, apiKey);
  else sessionStorage.removeItem(keyStorage);
}

const reasons = {
  400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 405: 'Method Not Allowed', 413: 'Payload Too Large',
  429: 'Too Many Requests', 500: 'Internal Server Error', 503: 'Service Unavailable',
};

/// An error in OpenAI's shape ({error: {message, type, param, code}}). status is the HTTP status of a refusal,
/// 0 when the server was not reached, null for an error event after the stream began (its status was 200).
export class ApiError extends Error {
  constructor(status, { message, type = null, param = null, code = null }) {
    super(message);
    this.status = status;
    this.type = type;
    this.param = param;
    this.code = code;
  }

  get isAuth() { return this.status === 401; }

  get title() {
    if (this.status === 0) return 'Server unreachable';
    if (this.status === null) return 'The answer failed';
    return `${this.status} ${reasons[this.status] ?? ''}`.trim();
  }
}

function headers(withBody = false) {
  const h = { accept: 'application/json' };
  if (withBody) h['content-type'] = 'application/json';
  if (apiKey) h.authorization = `Bearer ${apiKey}`;
  return h;
}

async function send(path, init) {
  try {
    return await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, { message: 'Cannot reach the server.', type: 'network_error' });
  }
}

async function errorOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body?.error?.message) return new ApiError(response.status, body.error);
  } catch { /* not JSON: use the text */ }
  return new ApiError(response.status, { message: text || response.statusText || `HTTP ${response.status}` });
}

/// GET path (relative to the page, so a server behind a path prefix works) and parse the JSON answer.
export async function getJson(path, signal) {
  const response = await send(path, { headers: headers(), signal });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/// POST body as JSON and parse the JSON answer (a refusal throws its ApiError).
export async function postJson(path, body, signal) {
  const response = await send(path, { method: 'POST', headers: headers(true), body: JSON.stringify(body), signal });
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

/// POST body with "stream": true and call onChunk with each event's JSON until "data: [DONE]". An error event
/// after the stream began throws like a refusal before it. Aborting signal closes the connection, which the
/// server takes as the client leaving: it aborts the request and frees its KV blocks.
export async function stream(path, body, onChunk, signal) {
  const response = await send(path, { method: 'POST', headers: headers(true), body: JSON.stringify(body), signal });
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new ApiError(null, { message: 'The stream ended without [DONE].', type: 'stream_error' });
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
      const data = event.split(/\r?\n/).filter(l => l.startsWith('data:')).map(l => l.slice(5).trimStart()).join('\n');
      if (data === '') continue;
      if (data === '[DONE]') return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new ApiError(null, chunk.error);
      onChunk(chunk);
    }
  }
}
