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

export class Api {
  /** `token`: an embed token; or null with `{ csrf }` for the signed-in dashboard's session. */
  constructor(token, { csrf = null } = {}) {
    this.token = token;
    this.csrf = csrf;
  }

  async get(path, params = {}) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') query.set(k, v);
    const qs = query.toString();
    return this.request('GET', qs ? `${path}?${qs}` : path);
  }

  /** A write (the dashboard's, with its session): the session's CSRF token goes with it. */
  async send(method, path, payload) {
    return this.request(method, path, payload);
  }

  async request(method, url, payload) {
    const session = this.token === null;
    const headers = session ? { Accept: 'application/json' } : { Authorization: `Bearer ${this.token}`, Accept: 'application/json' };
    if (session && method !== 'GET' && this.csrf) headers['X-CSRF-Token'] = this.csrf;
    if (payload !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: payload === undefined ? undefined : JSON.stringify(payload),
        cache: 'no-store',
        credentials: session ? 'same-origin' : 'omit',
        referrerPolicy: 'no-referrer',
      });
    } catch {
      throw new ApiError(0, 'network error');
    }
    if (response.status === 204) return null;
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
}

export const enc = encodeURIComponent;
