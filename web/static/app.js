// The Vigil viewer: a grid of streams, each played over WHEP with Vigil's
// results drawn on a canvas over the video, aligned by RTP timestamp.
import { decodeRLE, readStamp, trackColor, rtpDiff, pickResult, pushResult, Stats, STAMP } from './vigil.js';

const params = new URLSearchParams(location.search);
const DELAY_MS = clamp(Number(params.get('delay') ?? 150), 0, 4000, 150);
// Results that come after their frame was shown raise the video's delay
// up to this, so that boxes do not lag the picture.
const MAX_DELAY_MS = Math.max(DELAY_MS, 1000);
const CLOCK = 90000; // RTP ticks per second
const KEEP_TICKS = 3 * CLOCK; // results kept for alignment
const MAX_AGE_TICKS = CLOCK; // a result older than its frame by more is not drawn
const KP_MIN_SCORE = 0.3;

function clamp(x, lo, hi, dflt) {
  return Number.isFinite(x) ? Math.min(hi, Math.max(lo, x)) : dflt;
}

// --- token: #token=... once, then sessionStorage ---------------------------
const TOKEN_KEY = 'vigil.token';
{
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
}
function authHeaders(extra = {}) {
  const t = sessionStorage.getItem(TOKEN_KEY);
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}
const ENDED = 'stream ended';
function tokenMessage() {
  return sessionStorage.getItem(TOKEN_KEY)
    ? 'the token was refused: open /#token=... with the right one'
    : 'this server needs a token: open /#token=...';
}

// --- toggles, remembered in localStorage -----------------------------------
const TOGGLES_KEY = 'vigil.toggles';
const toggles = { boxes: true, ids: true, keypoints: true, masks: true };
try {
  Object.assign(toggles, JSON.parse(localStorage.getItem(TOGGLES_KEY) || '{}'));
} catch { /* a bad saved value keeps the defaults */ }
for (const box of document.querySelectorAll('[data-toggle]')) {
  const key = box.dataset.toggle;
  box.checked = !!toggles[key];
  box.addEventListener('change', () => {
    toggles[key] = box.checked;
    localStorage.setItem(TOGGLES_KEY, JSON.stringify(toggles));
  });
}

// --- one tile per stream ----------------------------------------------------
class Tile {
  constructor(id) {
    this.id = id;
    this.el = el('div', { class: 'tile', 'data-stream': id });
    this.stateEl = el('span', { class: 'state' }, 'new');
    this.video = el('video', { muted: '', playsinline: '', autoplay: '' });
    this.video.muted = true;
    this.canvas = el('canvas', { class: 'overlay', width: 1, height: 1 });
    this.ctx = this.canvas.getContext('2d');
    this.errorEl = el('div', { class: 'error' });
    this.view = el('div', { class: 'view' }, this.video, this.canvas, this.errorEl);
    this.statsEl = el('div', { class: 'stats' });
    this.el.append(el('div', { class: 'title' }, el('b', {}, id), this.stateEl), this.view, this.statsEl);
    this.el.addEventListener('click', () => setFocus(focused === this.id ? null : this.id));

    this.stamp = new OffscreenCanvas(STAMP.width, STAMP.height).getContext('2d', { willReadFrequently: true });
    this.ring = [];
    this.shown = new Map(); // rtp of recently displayed frames -> when, to catch late results
    this.delay = DELAY_MS; // the video receiver's jitterBufferTarget
    this.shownOrder = [];
    this.hello = null;
    this.stats = null;
    this.results = 0;
    this.lastDrawn = null;
    this.resetStats();
    this.error = '';
    this.backoff = 500;
    this.closed = false;
    this.video.requestVideoFrameCallback((now, meta) => this.onFrame(now, meta));
    this.connect();
  }

  setError(msg) {
    this.error = msg;
    this.errorEl.textContent = msg;
  }

  state() {
    if (this.pc) return this.pc.connectionState;
    return this.error ? 'failed' : 'new';
  }

  async connect() {
    clearTimeout(this.retryTimer);
    this.teardown();
    if (this.closed) return;
    // A new session may restart the stream's clock: forget the old one.
    this.ring = [];
    this.shown.clear();
    this.shownOrder = [];
    const pc = new RTCPeerConnection();
    this.pc = pc;
    const tr = pc.addTransceiver('video', { direction: 'recvonly' });
    this.receiver = tr.receiver;
    this.setDelay(this.delay);
    const dc = pc.createDataChannel('vigil', { ordered: true });
    dc.onmessage = (e) => this.onMessage(e.data);
    pc.ontrack = (e) => {
      this.video.srcObject = new MediaStream([e.track]);
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      const s = pc.connectionState;
      this.stateEl.textContent = s;
      this.stateEl.className = `state ${s}`;
      if (s === 'connected') {
        this.backoff = 500;
        this.setError('');
      } else if (s === 'failed' || s === 'closed') {
        this.retry('connection failed');
      } else if (s === 'disconnected') {
        clearTimeout(this.discTimer);
        this.discTimer = setTimeout(() => pc === this.pc && pc.connectionState === 'disconnected' && this.retry('connection lost'), 3000);
      }
    };
    dc.onclose = () => pc === this.pc && this.retry(ENDED);
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await iceGathered(pc, 3000);
      if (pc !== this.pc) return;
      const res = await fetch(`/whep/${encodeURIComponent(this.id)}`, {
        method: 'POST',
        headers: authHeaders({ 'Content-Type': 'application/sdp' }),
        body: pc.localDescription.sdp,
      });
      if (pc !== this.pc) return;
      if (res.status === 401) return this.retry(tokenMessage(), 10000);
      if (res.status === 404) return this.retry('stream not found (gone?)');
      if (res.status !== 201) return this.retry(`WHEP answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
      this.location = new URL(res.headers.get('Location') || '', location.href).href;
      await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
      this.setError('');
    } catch (e) {
      if (pc === this.pc) this.retry(`connection failed: ${e.message || e}`);
    }
  }

  // retry shows msg and reconnects after a doubling delay (at least min ms).
  retry(msg, min = 0) {
    if (this.closed) return;
    this.setError(msg);
    this.teardown();
    this.stateEl.textContent = 'retrying';
    this.stateEl.className = 'state';
    const wait = Math.max(min, this.backoff);
    this.backoff = Math.min(this.backoff * 2, 10000);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), wait);
  }

  teardown() {
    clearTimeout(this.discTimer);
    if (this.location) {
      fetch(this.location, { method: 'DELETE', headers: authHeaders(), keepalive: true }).catch(() => {});
      this.location = null;
    }
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      pc.close();
    }
  }

  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.teardown();
    this.el.remove();
  }

  onMessage(text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    if (m.type === 'hello') {
      this.hello = m;
    } else if (m.type === 'stats') {
      this.stats = m;
    } else if (m.type === 'result' && Number.isFinite(m.rtp)) {
      m.rtp >>>= 0;
      this.results++;
      const shownAt = this.shown.get(m.rtp);
      if (shownAt !== undefined) {
        // Its frame was on screen before it came: hold the video back by
        // that much more.
        this.late++;
        this.setDelay(this.delay + (performance.now() - shownAt) + 20);
      }
      pushResult(this.ring, m, KEEP_TICKS);
      if (m.end_of_stream) this.setError(ENDED);
      else if (this.error === ENDED) this.setError('');
    }
  }

  // onFrame runs for every displayed video frame: the only place we paint.
  onFrame(now, meta) {
    if (this.closed) return;
    this.video.requestVideoFrameCallback((n, m) => this.onFrame(n, m));
    const w = this.video.videoWidth;
    const h = this.video.videoHeight;
    if (!w || !h) return;
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
      this.view.style.setProperty('--ar', `${w} / ${h}`);
      this.el.style.setProperty('--ar-n', String(w / h));
    }
    const ctx = this.ctx;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const rtp = meta.rtpTimestamp;
    let res = null;
    if (rtp !== undefined) {
      this.markShown(rtp >>> 0);
      res = pickResult(this.ring, rtp >>> 0, MAX_AGE_TICKS);
    }
    if (rtp !== undefined) this.frames++;
    if (!res && this.ring.length > 0) this.missed++;
    if (res) {
      this.drawn++;
      this.alignRtp.add(rtpDiff(rtp >>> 0, res.rtp) / 90);
      this.draw(res, w, h);
    }
    if (w >= STAMP.width && h >= STAMP.height) {
      this.stamp.drawImage(this.video, 0, 0, STAMP.width, STAMP.height, 0, 0, STAMP.width, STAMP.height);
      const ms = readStamp(this.stamp.getImageData(0, 0, STAMP.width, STAMP.height).data, STAMP.width);
      if (ms !== null) {
        this.glass.add(performance.timeOrigin + meta.expectedDisplayTime - ms);
        if (res && Number.isFinite(res.captured_ms)) {
          const off = ms - Math.round(res.captured_ms);
          this.alignStamp.add(off);
          // Do the pixels show the frame the metadata names? (Under load the
          // video may already hold a newer frame when we draw it.)
          this.stampVsRtp.n++;
          if (Math.abs(off - rtpDiff(rtp >>> 0, res.rtp) / 90) < 1.5) this.stampVsRtp.agree++;
        }
      }
    }
  }

  // resetStats zeroes the counters: frames (frame callbacks; the browser
  // may skip some under load), drawn, missed (frames with no result to draw
  // although results came), late (results that came after their frame was
  // shown), and the offset and latency statistics.
  resetStats() {
    this.frames = this.drawn = this.missed = this.late = 0;
    this.alignRtp = new Stats();
    this.alignStamp = new Stats();
    this.glass = new Stats();
    this.stampVsRtp = { n: 0, agree: 0 };
  }

  // setDelay asks the browser to hold the video back ms (bounded).
  setDelay(ms) {
    this.delay = Math.round(Math.min(MAX_DELAY_MS, Math.max(DELAY_MS, ms)));
    try {
      this.receiver.jitterBufferTarget = this.delay;
    } catch { /* older browsers: default buffering */ }
  }

  markShown(rtp) {
    if (this.shown.has(rtp)) return;
    this.shown.set(rtp, performance.now());
    this.shownOrder.push(rtp);
    if (this.shownOrder.length > 256) this.shown.delete(this.shownOrder.shift());
  }

  draw(res, w, h) {
    const ctx = this.ctx;
    const lw = Math.max(2, w / 400);
    const dets = Array.isArray(res.detections) ? res.detections : [];
    this.lastDrawn = {
      rtp: res.rtp,
      seq: res.seq,
      captured_ms: res.captured_ms,
      boxes: dets.filter((d) => Array.isArray(d.box)).map((d) => [...d.box.slice(0, 4), d.track_id || 0]),
    };
    // Results are in source pixels, normally the video's own size; an
    // encoder that scaled the video is followed by scaling the drawing.
    const sw = res.width > 0 ? res.width : w;
    const sh = res.height > 0 ? res.height : h;
    ctx.setTransform(w / sw, 0, 0, h / sh, 0, 0);
    if (toggles.masks) {
      const m = maskLayer(res, sw, sh);
      if (m) ctx.drawImage(m, 0, 0);
    }
    ctx.lineWidth = lw;
    ctx.lineJoin = 'round';
    if (toggles.keypoints) {
      const model = this.hello?.models?.find((x) => x.name === res.model) ?? this.hello?.models?.[0];
      const skeleton = model?.skeleton ?? [];
      for (const d of dets) {
        const kp = d.keypoints;
        if (!Array.isArray(kp)) continue;
        const ok = (p) => p && (p[2] === undefined || p[2] >= KP_MIN_SCORE);
        ctx.strokeStyle = ctx.fillStyle = trackColor(d.track_id);
        ctx.beginPath();
        for (const [a, b] of skeleton) {
          if (ok(kp[a]) && ok(kp[b])) {
            ctx.moveTo(kp[a][0], kp[a][1]);
            ctx.lineTo(kp[b][0], kp[b][1]);
          }
        }
        ctx.stroke();
        for (const p of kp) {
          if (!ok(p)) continue;
          ctx.beginPath();
          ctx.arc(p[0], p[1], lw * 1.5, 0, 2 * Math.PI);
          ctx.fill();
        }
      }
    }
    if (toggles.boxes || toggles.ids) {
      const font = Math.round(Math.max(12, w / 80));
      ctx.font = `${font}px system-ui, sans-serif`;
      ctx.textBaseline = 'top';
      for (const d of dets) {
        if (!Array.isArray(d.box)) continue;
        const [x1, y1, x2, y2] = d.box;
        const color = trackColor(d.track_id);
        if (toggles.boxes) {
          ctx.strokeStyle = color;
          ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
        }
        if (toggles.ids) {
          const score = Number.isFinite(d.score) ? ` ${d.score.toFixed(2)}` : '';
          const text = `${d.track_id ? `#${d.track_id} ` : ''}${d.label ?? d.class_id ?? ''}${score}`;
          const tw = ctx.measureText(text).width + 6;
          const ty = y1 - font - 4 >= 0 ? y1 - font - 4 : y1;
          ctx.fillStyle = 'rgba(0, 0, 0, 0.7)';
          ctx.fillRect(x1, ty, tw, font + 4);
          ctx.fillStyle = color;
          ctx.fillText(text, x1 + 3, ty + 2);
        }
      }
    }
  }

  report() {
    const q = this.video.getVideoPlaybackQuality?.();
    const pick = (s, keys) => Object.fromEntries(keys.map((k) => [k, s.summary()[k]]));
    return {
      stream: this.id,
      state: this.state(),
      error: this.error,
      videoWidth: this.video.videoWidth,
      videoHeight: this.video.videoHeight,
      totalVideoFrames: q ? q.totalVideoFrames : 0,
      results: this.results,
      frames: this.frames,
      drawn: this.drawn,
      missed: this.missed,
      late: this.late,
      delay_ms: this.delay,
      lastDrawn: this.lastDrawn,
      align_rtp_ms: pick(this.alignRtp, ['n', 'last', 'mean', 'max_abs']),
      align_stamp_ms: pick(this.alignStamp, ['n', 'last', 'mean', 'median', 'max_abs']),
      glass_ms: pick(this.glass, ['n', 'last', 'median', 'p95']),
      stamp_vs_rtp: { ...this.stampVsRtp },
      stats: this.stats,
    };
  }

  renderStats() {
    const s = this.stats;
    const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
    const g = this.glass.summary();
    const lines = [
      `in ${f(s?.fps_in)} fps  analysed ${f(s?.fps_analyzed)} fps  infer ${f(s?.infer_ms)} ms  tracks ${s?.active_tracks ?? '-'}`,
      `latency ${f(s?.latency_ms, 0)} ms${g.n ? `  glass ${f(g.median, 0)} ms (p95 ${f(g.p95, 0)})` : ''}  ${this.state()}`,
    ];
    this.statsEl.textContent = lines.join('\n');
  }
}

// maskLayer paints the result's masks (translucent fill, opaque outline)
// once into a canvas the size of the video, cached on the result.
function maskLayer(res, w, h) {
  if (res._maskLayer !== undefined) return res._maskLayer;
  res._maskLayer = null;
  const dets = (res.detections || []).filter((d) => d.mask && typeof d.mask.counts === 'string');
  if (dets.length === 0) return null;
  const img = new ImageData(w, h);
  const px = img.data;
  for (const d of dets) {
    const [mh, mw] = d.mask.size || [];
    if (mh !== h || mw !== w) continue; // masks cover the whole source frame
    let bits;
    try {
      bits = decodeRLE(d.mask.counts, h, w);
    } catch {
      continue;
    }
    const [r, g, b] = cssRGB(trackColor(d.track_id));
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        if (!bits[i]) continue;
        const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 || !bits[i - 1] || !bits[i + 1] || !bits[i - w] || !bits[i + w];
        const o = i * 4;
        px[o] = r;
        px[o + 1] = g;
        px[o + 2] = b;
        px[o + 3] = edge ? 255 : 90;
      }
    }
  }
  const c = new OffscreenCanvas(w, h);
  c.getContext('2d').putImageData(img, 0, 0);
  res._maskLayer = c;
  return c;
}

const rgbCache = new Map();
function cssRGB(color) {
  let v = rgbCache.get(color);
  if (!v) {
    const c = new OffscreenCanvas(1, 1).getContext('2d', { willReadFrequently: true });
    c.fillStyle = color;
    c.fillRect(0, 0, 1, 1);
    v = [...c.getImageData(0, 0, 1, 1).data.slice(0, 3)];
    rgbCache.set(color, v);
  }
  return v;
}

function iceGathered(pc, ms) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const t = setTimeout(resolve, ms);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(t);
        resolve();
      }
    });
  });
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

// --- grid, focus and the stream list ---------------------------------------
const grid = document.getElementById('grid');
const banner = document.getElementById('banner');
const emptyEl = document.getElementById('empty');
const tiles = new Map();
let focused = params.get('stream');

function setFocus(id) {
  focused = id;
  document.body.classList.toggle('focus', !!id);
  for (const t of tiles.values()) t.el.classList.toggle('focused', t.id === id);
  const q = new URLSearchParams(location.search);
  if (id) q.set('stream', id);
  else q.delete('stream');
  history.replaceState(null, '', `${location.pathname}${q.size ? `?${q}` : ''}`);
}
document.addEventListener('keydown', (e) => e.key === 'Escape' && setFocus(null));

function sync(ids) {
  const want = new Set(ids);
  if (focused) want.add(focused); // a focused stream keeps its tile, showing why it does not play
  for (const [id, t] of tiles) {
    if (!want.has(id)) {
      t.close();
      tiles.delete(id);
    }
  }
  for (const id of [...want].sort()) {
    if (!tiles.has(id)) {
      const t = new Tile(id);
      tiles.set(id, t);
      grid.append(t.el);
    }
  }
  [...tiles.values()].sort((a, b) => a.id.localeCompare(b.id)).forEach((t) => grid.append(t.el));
  emptyEl.hidden = tiles.size > 0;
  setFocus(focused);
}

async function refresh() {
  try {
    const res = await fetch('/api/streams', { headers: authHeaders() });
    if (res.status === 401) {
      banner.textContent = tokenMessage();
      return;
    }
    if (!res.ok) throw new Error(`/api/streams answered ${res.status}`);
    const list = await res.json();
    banner.textContent = '';
    sync((Array.isArray(list) ? list : []).map((s) => String(s.id)));
  } catch (e) {
    banner.textContent = `cannot list streams: ${e.message || e}`;
  }
}

window.vigil = {
  report: () => ({ tiles: [...tiles.values()].sort((a, b) => a.id.localeCompare(b.id)).map((t) => t.report()) }),
  // resetStats starts the measurements afresh (e.g. after a warm-up).
  resetStats: () => tiles.forEach((t) => t.resetStats()),
  tiles,
};
addEventListener('pagehide', () => tiles.forEach((t) => t.teardown()));
setInterval(() => tiles.forEach((t) => t.renderStats()), 500);
setInterval(refresh, 2000);
if (focused) sync([]);
refresh();
