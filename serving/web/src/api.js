// The v1 API from the browser: a widget with its embed token (no cookies), the dashboard with its session
// cookie (HttpOnly: this script never sees it) and the session's CSRF token for writes. Never a key.

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail || '';
  }

  /** Errors that no retry can fix: the widget stops refreshing and says why. */
  get fatal() {
    return this.status === 401 || this.status === 403 || this.status === 404 || this.status === 422;
  }

  get expired() {
    return this.status === 401 && this.detail === 'token expired';
  }
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const error = new ApiError(response.status, body && typeof body.detail === 'string' ? body.detail : '');
  error.retryAfter = Number(response.headers.get('Retry-After')) || 0;
  return error;
}

export class Api {
  /** `token`: an embed token; or null with `{ csrf }` for the signed-in dashboard's session. */
  constructor(token, { csrf = null } = {}) {
    this.token = token;
    this.csrf = csrf;
  }

  async get(path, params = {}) {
    return this.#json('GET', this.#url(path, params));
  }

  /** A write (the dashboard's, with its session): the session's CSRF token goes with it. */
  async send(method, path, payload) {
    return this.#json(method, path, payload);
  }

  async #json(method, url, payload) {
    const response = await this.#fetch(method, url, 'application/json', { payload });
    if (!response.ok) throw await errorOf(response);
    if (response.status === 204) return null;
    try {
      return await response.json();
    } catch {
      return null;
    }
  }

  /**
   * Server-sent events of `path`, read with fetch (EventSource cannot send the Authorization header):
   * `onEvent(name, data)` per event with JSON data; resolves when the server closes the stream.
   */
  async stream(path, params, onEvent, signal) {
    const response = await this.#fetch('GET', this.#url(path, params), 'text/event-stream', { signal });
    if (!response.ok || !response.body) throw await errorOf(response);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch {
        throw new ApiError(0, 'network error');
      }
      if (chunk.done) return;
      buffer += chunk.value;
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
        let name = 'message';
        const data = [];
        for (const line of frame.split(/\r?\n/)) {
          if (line.startsWith('event:')) name = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        }
        if (data.length) onEvent(name, JSON.parse(data.join('\n')));
      }
    }
  }

  #url(path, params) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') query.set(k, v);
    const qs = query.toString();
    return qs ? `${path}?${qs}` : path;
  }

  async #fetch(method, url, accept, { payload, signal } = {}) {
    const session = this.token === null;
    const headers = session ? { Accept: accept } : { Authorization: `Bearer ${this.token}`, Accept: accept };
    if (session && method !== 'GET' && this.csrf) headers['X-CSRF-Token'] = this.csrf;
    if (payload !== undefined) headers['Content-Type'] = 'application/json';
    try {
      return await fetch(url, {
        method,
        headers,
        body: payload === undefined ? undefined : JSON.stringify(payload),
        cache: 'no-store',
        credentials: session ? 'same-origin' : 'omit',
        referrerPolicy: 'no-referrer',
        signal,
      });
    } catch {
      throw new ApiError(0, 'network error');
    }
  }
}

export const enc = encodeURIComponent;
