// REST client of the Parley API with the session's tokens.
//
// Token storage trade-off: the access token (short-lived) is kept in memory
// only, so a script injection could not read it from storage. The refresh
// token is kept in localStorage so a reload keeps the user signed in; that
// makes it readable by any script on this origin, which the strict
// Content-Security-Policy (no inline or foreign script) and text-only
// rendering of user content guard against. An HttpOnly cookie would be
// stronger but needs a cookie-based refresh endpoint with CSRF protection.

const REFRESH_KEY = 'parley.refresh_token';

export class APIError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export class Session {
  constructor() {
    this.accessToken = '';
    this.expiresAt = 0;
    this.user = null;
    this.refreshing = null; // one refresh at a time: refresh tokens rotate
    this.onChange = () => {};
    this.onSignedOut = () => {};
    this.refreshTimer = 0;
  }

  get refreshToken() { return localStorage.getItem(REFRESH_KEY) || ''; }

  accept(resp) {
    this.accessToken = resp.access_token;
    this.expiresAt = Date.parse(resp.expires_at) || (Date.now() + 10 * 60 * 1000);
    if (resp.user) this.user = resp.user;
    if (resp.refresh_token) localStorage.setItem(REFRESH_KEY, resp.refresh_token);
    // Refresh a little before expiry so long-lived pages (and the open
    // WebSocket, which re-authenticates) never hold an expired token.
    clearTimeout(this.refreshTimer);
    const wait = Math.max(5000, this.expiresAt - Date.now() - 60000);
    this.refreshTimer = setTimeout(() => { this.refresh().catch(() => {}); }, wait);
    this.onChange();
  }

  async login(login, password) {
    this.accept(await request('POST', '/v1/auth/login', { body: { login, password } }));
  }

  async register(fields) {
    this.accept(await request('POST', '/v1/auth/register', { body: fields }));
  }

  // refresh swaps the stored refresh token for new tokens; concurrent
  // callers share one request so a rotated token is never used twice.
  refresh() {
    if (!this.refreshing) {
      const token = this.refreshToken;
      this.refreshing = (async () => {
        if (!token) throw new APIError(401, 'not signed in');
        try {
          this.accept(await request('POST', '/v1/auth/refresh', { body: { refresh_token: token } }));
        } catch (err) {
          if (err.status === 401 || err.status === 400 || err.status === 404) this.clear();
          throw err;
        }
      })().finally(() => { this.refreshing = null; });
    }
    return this.refreshing;
  }

  async logout() {
    const token = this.refreshToken;
    try {
      if (token) await request('POST', '/v1/auth/logout', { body: { refresh_token: token }, token: this.accessToken });
    } finally {
      this.clear();
    }
  }

  clear() {
    clearTimeout(this.refreshTimer);
    localStorage.removeItem(REFRESH_KEY);
    const was = this.accessToken !== '' || this.user !== null;
    this.accessToken = '';
    this.user = null;
    if (was) this.onSignedOut();
  }

  // api calls the REST API with the access token; on 401 it refreshes once
  // and retries once.
  async api(method, path, opts = {}) {
    if (!this.accessToken && this.refreshToken) await this.refresh();
    try {
      return await request(method, path, { ...opts, token: this.accessToken });
    } catch (err) {
      if (err.status !== 401 || !this.refreshToken) throw err;
      await this.refresh();
      return request(method, path, { ...opts, token: this.accessToken });
    }
  }

  // fetchBlob downloads an authenticated resource (attachments) as a Blob.
  async fetchBlob(url) {
    const get = () => fetch(url, { headers: { Authorization: 'Bearer ' + this.accessToken } });
    let resp = await get();
    if (resp.status === 401 && this.refreshToken) {
      await this.refresh();
      resp = await get();
    }
    if (!resp.ok) throw new APIError(resp.status, 'download failed: ' + resp.status);
    return resp.blob();
  }
}

// request performs one HTTP call with a deadline and decodes JSON.
export async function request(method, path, { body, token, raw, contentType, timeoutMs = 15000 } = {}) {
  const headers = {};
  let payload;
  if (raw !== undefined) {
    payload = raw;
    if (contentType) headers['Content-Type'] = contentType;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  if (token) headers.Authorization = 'Bearer ' + token;
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), timeoutMs);
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload, signal: ctrl.signal });
  } catch (err) {
    throw new APIError(0, err.name === 'AbortError' ? 'the server did not answer in time' : 'network error', null);
  } finally {
    clearTimeout(timer);
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!resp.ok) {
    const msg = (data && (data.message || data.error)) || resp.statusText || ('HTTP ' + resp.status);
    throw new APIError(resp.status, msg, data);
  }
  return data || {};
}

// qs builds a query string from an object, skipping empty values; arrays
// repeat the key.
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => u.append(k, x));
    else u.append(k, String(v));
  }
  const s = u.toString();
  return s ? '?' + s : '';
}
