// The realtime connection (WebSocket protocol v1, apis/asyncapi/parley-ws.yaml):
// authenticates with a first frame (browsers cannot set headers on the
// upgrade), correlates requests with their ack/error by id, and reconnects
// with exponential backoff and full jitter so a restarted gateway is not hit
// by every client at the same instant.

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 30000;
const REQUEST_TIMEOUT_MS = 15000;

export class RealtimeSocket {
  // getToken returns a promise of a valid access token; handlers get
  // onWelcome(data), onFrame(frame), onState(state).
  constructor({ getToken, onWelcome, onFrame, onState, onAuthFailed }) {
    this.getToken = getToken;
    this.onWelcome = onWelcome;
    this.onFrame = onFrame;
    this.onState = onState;
    this.onAuthFailed = onAuthFailed;
    this.ws = null;
    this.ready = false;
    this.attempt = 0;
    this.seq = 0;
    this.pending = new Map(); // request id -> {resolve, reject, timer}
    this.timer = 0;
    this.heartbeat = 0;
    this.stopped = true;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.heartbeat);
    if (this.ws) this.ws.close(1000, 'bye');
    this.ws = null;
    this.ready = false;
    this.failPending('disconnected');
  }

  async connect() {
    if (this.stopped) return;
    this.onState('connecting');
    let token;
    try {
      token = await this.getToken();
    } catch (err) {
      if (err && err.status === 401) { this.onAuthFailed(); return; }
      this.scheduleReconnect();
      return;
    }
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/v1/ws';
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: 'authenticate', data: { token } }));
    };
    ws.onmessage = (ev) => {
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      this.dispatch(frame);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.ready = false;
      clearInterval(this.heartbeat);
      this.failPending('connection closed');
      if (this.stopped) return;
      this.onState('offline');
      // 4001: the token was refused; refresh it before trying again (the
      // next getToken call refreshes when the session lost its token).
      if (ev.code === 4001) this.tokenRejected = true;
      this.scheduleReconnect();
    };
  }

  scheduleReconnect() {
    if (this.stopped) return;
    // Full jitter: a random delay between 0 and the exponential cap.
    const cap = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** this.attempt);
    this.attempt++;
    const delay = Math.floor(Math.random() * cap);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  dispatch(frame) {
    if (frame.type === 'welcome') {
      this.ready = true;
      this.attempt = 0;
      this.tokenRejected = false;
      const every = Number(frame.data && frame.data.heartbeat_interval_ms) || 25000;
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => this.send({ type: 'ping', id: this.nextID('p') }), every);
      this.onState('online');
      this.onWelcome(frame.data || {});
      return;
    }
    if ((frame.type === 'ack' || frame.type === 'error' || frame.type === 'pong') && frame.id && this.pending.has(frame.id)) {
      const p = this.pending.get(frame.id);
      this.pending.delete(frame.id);
      clearTimeout(p.timer);
      if (frame.type === 'error') {
        const e = new Error((frame.data && frame.data.message) || 'error');
        e.code = frame.data && frame.data.code;
        p.reject(e);
      } else {
        p.resolve(frame.data || {});
      }
      return;
    }
    this.onFrame(frame);
  }

  nextID(prefix) {
    this.seq++;
    return prefix + '-' + this.seq;
  }

  // send writes a frame if connected; it reports whether it did.
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.ready) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  // request sends a frame with an id and resolves with its ack data.
  request(frame) {
    return new Promise((resolve, reject) => {
      const id = this.nextID(frame.type);
      if (!this.send({ ...frame, id })) {
        const e = new Error('not connected');
        e.code = 'disconnected';
        reject(e);
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(id);
        const e = new Error('timed out');
        e.code = 'timeout';
        reject(e);
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  failPending(reason) {
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      const e = new Error(reason);
      e.code = 'disconnected';
      p.reject(e);
    }
    this.pending.clear();
  }
}
