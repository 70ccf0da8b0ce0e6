// Pure helpers of the Vigil viewer: no DOM, no network, so that tests can
// run them in a bare page and compare them with the Go side.

// decodeRLE decodes a compressed COCO RLE string (pycocotools' rleFrString:
// 5 value bits per character from '0', counts after the second stored as
// differences to the count two before) over an h x w mask stored column-major,
// and returns the mask row-major as 0/1 bytes. Runs past the end are cut; a
// malformed string throws.
export function decodeRLE(counts, h, w) {
  if (!(h >= 0 && w >= 0 && Number.isInteger(h) && Number.isInteger(w))) {
    throw new Error(`decodeRLE: bad size ${h}x${w}`);
  }
  const n = h * w;
  const out = new Uint8Array(n);
  const cnts = [];
  let p = 0;
  while (p < counts.length) {
    const start = p;
    let x = 0;
    let k = 0;
    for (;;) {
      if (p === counts.length) throw new Error(`decodeRLE: value at ${start} is cut short`);
      if (k === 7) throw new Error(`decodeRLE: value at ${start} is too long`);
      const c = counts.charCodeAt(p) - 48;
      if (c < 0 || c > 63) throw new Error(`decodeRLE: bad character ${JSON.stringify(counts[p])} at ${p}`);
      x += (c & 0x1f) * 2 ** (5 * k); // no 32-bit shifts: values reach 35 bits
      p++;
      k++;
      if (!(c & 0x20)) {
        if (c & 0x10) x -= 2 ** (5 * k);
        break;
      }
    }
    if (cnts.length > 2) x += cnts[cnts.length - 2];
    if (x < 0 || x > 0xffffffff) throw new Error(`decodeRLE: count ${cnts.length} is ${x}`);
    cnts.push(x);
  }
  let i = 0;
  for (let j = 0; j < cnts.length && i < n; j++) {
    const end = Math.min(n, i + cnts[j]);
    if (j % 2 === 1) {
      for (let q = i; q < end; q++) {
        const col = (q / h) | 0;
        out[(q - col * h) * w + col] = 1;
      }
    }
    i = end;
  }
  return out;
}

// The capture-time stamp of synth scenes: 24 x 2 cells of 16 px in the
// top-left corner, bits 0..3 = 1,0,1,0, bits 4..47 = Unix ms, MSB first.
export const STAMP = Object.freeze({ width: 384, height: 32, cell: 16, cols: 24, bits: 48 });

// readStamp reads the stamp from RGBA pixels (Uint8ClampedArray or similar,
// rows of `width` pixels, at least 384 x 32 of them) and returns the stamped
// Unix milliseconds, or null when the sync bits do not match.
export function readStamp(rgba, width) {
  const { cell, cols, bits } = STAMP;
  if (!(width >= STAMP.width) || rgba.length < width * STAMP.height * 4) return null;
  let value = 0;
  for (let k = 0; k < bits; k++) {
    const x0 = (k % cols) * cell + 4;
    const y0 = ((k / cols) | 0) * cell + 4;
    let sum = 0;
    for (let y = y0; y < y0 + 8; y++) {
      for (let x = x0; x < x0 + 8; x++) {
        const o = (y * width + x) * 4;
        sum += rgba[o] + rgba[o + 1] + rgba[o + 2];
      }
    }
    const bit = sum / (3 * 64) >= 128 ? 1 : 0;
    if (k < 4) {
      if (bit !== (k % 2 === 0 ? 1 : 0)) return null;
    } else {
      value = value * 2 + bit;
    }
  }
  return value;
}

// trackHue spreads consecutive track IDs around the colour wheel by the
// golden angle, so neighbours never look alike and an ID keeps its colour.
export function trackHue(id) {
  return (((id * 137.50776405) % 360) + 360) % 360;
}

// trackColor is the CSS colour of a track; untracked (0 or absent) is grey.
export function trackColor(id) {
  if (!id) return 'hsl(0, 0%, 62%)';
  return `hsl(${trackHue(id).toFixed(1)}, 90%, 58%)`;
}

// rtpDiff is a - b for 32-bit RTP timestamps, wrap-aware (signed 32-bit).
export function rtpDiff(a, b) {
  return (a - b) | 0;
}

// pickResult returns the newest result in ring (objects with .rtp) whose rtp
// is at or before the frame's rtp and at most maxAgeTicks older, or null.
export function pickResult(ring, rtp, maxAgeTicks) {
  let best = null;
  let bestD = Infinity;
  for (const r of ring) {
    const d = rtpDiff(rtp, r.rtp);
    if (d >= 0 && d <= maxAgeTicks && d < bestD) {
      best = r;
      bestD = d;
    }
  }
  return best;
}

// pushResult appends r to ring and drops entries more than keepTicks older
// than r (or, after a jump, newer than it), keeping at most maxLen.
export function pushResult(ring, r, keepTicks, maxLen = 256) {
  ring.push(r);
  let i = 0;
  while (i < ring.length - 1) {
    const d = rtpDiff(r.rtp, ring[i].rtp);
    if (d > keepTicks || d < -keepTicks || ring.length - i > maxLen) i++;
    else break;
  }
  if (i > 0) ring.splice(0, i);
  return ring;
}

// Stats accumulates a series: count, last, mean and max |x| over all
// values, median and 95th percentile over the latest `window` values.
export class Stats {
  constructor(window = 1000) {
    this.window = window;
    this.n = 0;
    this.sum = 0;
    this.maxAbs = 0;
    this.last = null;
    this.recent = [];
  }

  add(x) {
    if (!Number.isFinite(x)) return;
    this.n++;
    this.sum += x;
    this.last = x;
    this.maxAbs = Math.max(this.maxAbs, Math.abs(x));
    this.recent.push(x);
    if (this.recent.length > this.window) this.recent.shift();
  }

  quantile(q) {
    if (this.recent.length === 0) return null;
    const s = [...this.recent].sort((a, b) => a - b);
    const pos = q * (s.length - 1); // linear interpolation, as numpy's default
    const lo = Math.floor(pos);
    const hi = Math.min(lo + 1, s.length - 1);
    return s[lo] + (s[hi] - s[lo]) * (pos - lo);
  }

  summary() {
    return {
      n: this.n,
      last: this.last,
      mean: this.n ? this.sum / this.n : null,
      median: this.quantile(0.5),
      p95: this.quantile(0.95),
      max_abs: this.maxAbs,
    };
  }
}
