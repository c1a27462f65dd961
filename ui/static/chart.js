// A small line chart drawn on a canvas: a window of the last points of one or more series,
// the time running left to right, the vertical axis from zero to a rounded maximum. The window
// grows with the data, a whole number of minutes at a time, up to windowMs: a page opened a
// minute ago shows that minute across the whole width.

const fmtAxis = (v) => {
  if (v >= 1e9) return `${+(v / 1e9).toFixed(1)}G`;
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  if (v > 0 && v < 0.01) return v.toExponential(0);
  return `${+v.toFixed(2)}`;
};

// niceMax rounds a maximum up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

export class Chart {
  // canvas: the element; series: [{label, color}] (color: a CSS custom property name);
  // windowMs: how much time the chart shows; format(v): how values are written.
  constructor(canvas, {series, windowMs = 15 * 60 * 1000, format = fmtAxis}) {
    this.canvas = canvas;
    this.series = series;
    this.windowMs = windowMs;
    this.format = format;
    this.points = []; // {t, values}
  }

  // push adds a point (t in ms) and forgets those older than the window.
  push(t, values) {
    this.points.push({t, values});
    while (this.points.length && this.points[0].t < t - this.windowMs) this.points.shift();
    this.canvas.dataset.points = String(this.points.length);
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, hgt = c.clientHeight;
    if (!w || !hgt) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hgt);
    const css = getComputedStyle(c);
    const muted = css.getPropertyValue('--muted').trim() || '#888';
    const grid = css.getPropertyValue('--border').trim() || '#ccc';
    const left = 56, right = 6, top = 8, bottom = 16;
    const pw = w - left - right, ph = hgt - top - bottom;
    let max = 0;
    for (const p of this.points) for (const v of p.values) if (v > max) max = v;
    max = niceMax(max);
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = muted;
    g.strokeStyle = grid;
    g.lineWidth = 1;
    g.textAlign = 'right';
    g.textBaseline = 'middle';
    for (const f of [0, 0.5, 1]) {
      const y = Math.round(top + ph * (1 - f)) + 0.5;
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(left + pw, y);
      g.stroke();
      g.fillText(this.format(max * f), left - 4, y);
    }
    g.textBaseline = 'alphabetic';
    g.textAlign = 'left';
    const now = this.points.length ? this.points[this.points.length - 1].t : 0;
    const held = this.points.length ? now - this.points[0].t : 0;
    const span = Math.min(this.windowMs, Math.max(1, Math.ceil(held / 60000)) * 60000);
    g.fillText(`−${Math.round(span / 60000)} min`, left, hgt - 3);
    g.textAlign = 'right';
    g.fillText('now', left + pw, hgt - 3);
    if (this.points.length === 0) return;
    const x = (t) => left + pw * (1 - (now - t) / span);
    const y = (v) => top + ph * (1 - v / max);
    this.series.forEach((s, i) => {
      g.strokeStyle = css.getPropertyValue(s.color).trim() || '#36c';
      g.lineWidth = 1.5;
      g.lineJoin = 'round';
      g.beginPath();
      let prevT = null;
      for (const p of this.points) {
        const v = p.values[i];
        if (v == null) { prevT = null; continue; }
        // a gap of more than 3 s (the page was not watching) breaks the line
        if (prevT === null || p.t - prevT > 3000) g.moveTo(x(p.t), y(v));
        else g.lineTo(x(p.t), y(v));
        prevT = p.t;
      }
      g.stroke();
    });
  }
}
