// The v1 API from the browser, with the page's token (an embed or dashboard token, never a tenant key).

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

export class Api {
  constructor(token) {
    this.token = token;
  }

  async get(path, params = {}) {
    const response = await this.#fetch(path, params, 'application/json');
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) {
      const detail = body && typeof body.detail === 'string' ? body.detail : '';
      const error = new ApiError(response.status, detail);
      error.retryAfter = Number(response.headers.get('Retry-After')) || 0;
      throw error;
    }
    return body;
  }

  /**
   * Server-sent events of `path`, read with fetch (EventSource cannot send the Authorization header):
   * `onEvent(name, data)` per event with JSON data; resolves when the server closes the stream.
   */
  async stream(path, params, onEvent, signal) {
    const response = await this.#fetch(path, params, 'text/event-stream', signal);
    if (!response.ok || !response.body) {
      let body = null;
      try {
        body = await response.json();
      } catch {
        body = null;
      }
      const error = new ApiError(response.status, body && typeof body.detail === 'string' ? body.detail : '');
      error.retryAfter = Number(response.headers.get('Retry-After')) || 0;
      throw error;
    }
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

  async #fetch(path, params, accept, signal) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') query.set(k, v);
    const qs = query.toString();
    try {
      return await fetch(qs ? `${path}?${qs}` : path, {
        headers: { Authorization: `Bearer ${this.token}`, Accept: accept },
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
        signal,
      });
    } catch {
      throw new ApiError(0, 'network error');
    }
  }
}

export const enc = encodeURIComponent;
