// A hand-written SVG of latency distributions: one panel per group of series, x = latency on a
// log scale, y = percentile on a tail-stretching scale (p0, p50, p90, p99, p99.9 equally spaced
// by -log10(1 - q)), so that both the medians and the tails of every alternative can be read off
// side by side.

export interface Panel {
  title: string;
  series: Array<{ name: string; us: number[] }>;
}

const COLORS = ['#d62728', '#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939'];
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const TAIL_MAX = 3; // p99.9

function tailY(q: number): number {
  return Math.min(TAIL_MAX, -Math.log10(Math.max(1e-9, 1 - q)));
}

export function latencySvg(title: string, panels: Panel[], subtitle = ''): string {
  const W = 1160, PH = 430, LEFT = 70, RIGHT = 400, TOP = 56, GAP = 40;
  const plotW = W - LEFT - RIGHT, plotH = PH - 70;
  const H = TOP + panels.length * (PH + GAP);
  // One x range for every panel, so they compare at a glance.
  let lo = Infinity, hi = -Infinity;
  for (const p of panels)
    for (const s of p.series) {
      const a = [...s.us].filter((v) => v > 0).sort((x, y) => x - y);
      if (!a.length) continue;
      lo = Math.min(lo, a[0]);
      hi = Math.max(hi, a[Math.min(a.length - 1, Math.ceil(0.999 * a.length) - 1)]);
    }
  if (!Number.isFinite(lo)) { lo = 1; hi = 1000; }
  const x0 = Math.floor(Math.log10(lo)), x1 = Math.ceil(Math.log10(hi));
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${LEFT}" y="24" font-size="16" font-weight="bold">${esc(title)}</text>`);
  if (subtitle) out.push(`<text x="${LEFT}" y="42" fill="#555">${esc(subtitle)}</text>`);
  panels.forEach((panel, pi) => {
    const oy = TOP + pi * (PH + GAP);
    const px = (us: number) => LEFT + ((Math.log10(us) - x0) / (x1 - x0)) * plotW;
    const py = (q: number) => oy + 30 + plotH - (tailY(q) / TAIL_MAX) * plotH;
    out.push(`<text x="${LEFT}" y="${oy + 16}" font-size="14" font-weight="bold">${esc(panel.title)}</text>`);
    out.push(`<rect x="${LEFT}" y="${oy + 30}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`);
    for (let e = x0; e <= x1; e++) {
      const x = px(10 ** e);
      out.push(`<line x1="${x}" y1="${oy + 30}" x2="${x}" y2="${oy + 30 + plotH}" stroke="#ddd"/>`);
      const label = e < 0 ? `${10 ** e} µs` : e < 3 ? `${10 ** e} µs` : `${10 ** (e - 3)} ms`;
      out.push(`<text x="${x}" y="${oy + 30 + plotH + 16}" text-anchor="middle">${label}</text>`);
    }
    for (const [q, label] of [[0, 'p0'], [0.5, 'p50'], [0.9, 'p90'], [0.99, 'p99'], [0.999, 'p99.9']] as const) {
      const y = py(q);
      out.push(`<line x1="${LEFT}" y1="${y}" x2="${LEFT + plotW}" y2="${y}" stroke="#eee"/>`);
      out.push(`<text x="${LEFT - 6}" y="${y + 4}" text-anchor="end">${label}</text>`);
    }
    out.push(`<text x="${LEFT + plotW / 2}" y="${oy + 30 + plotH + 34}" text-anchor="middle" fill="#555">round-trip latency (log scale)</text>`);
    panel.series.forEach((s, si) => {
      const a = [...s.us].filter((v) => v > 0).sort((x, y) => x - y);
      if (!a.length) return;
      const color = COLORS[si % COLORS.length];
      const pts: string[] = [];
      const steps = 240;
      for (let i = 0; i <= steps; i++) {
        const t = (i / steps) * TAIL_MAX; // even steps on the tail scale
        const q = 1 - 10 ** -t;
        const v = a[Math.min(a.length - 1, Math.max(0, Math.ceil(q * a.length) - 1))];
        pts.push(`${px(Math.max(v, 10 ** x0)).toFixed(1)},${py(q).toFixed(1)}`);
      }
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="${si === 0 ? 2.5 : 1.6}" points="${pts.join(' ')}"/>`);
      const ly = oy + 40 + si * 18;
      const p50 = a[Math.ceil(0.5 * a.length) - 1];
      const p99 = a[Math.min(a.length - 1, Math.ceil(0.99 * a.length) - 1)];
      out.push(`<line x1="${LEFT + plotW + 12}" y1="${ly - 4}" x2="${LEFT + plotW + 32}" y2="${ly - 4}" stroke="${color}" stroke-width="3"/>`);
      out.push(`<text x="${LEFT + plotW + 38}" y="${ly}">${esc(s.name)} (${fmt(p50)} / ${fmt(p99)})</text>`);
    });
    out.push(`<text x="${LEFT + plotW + 12}" y="${oy + 40 + panel.series.length * 18 + 6}" fill="#555">(p50 / p99, µs)</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function fmt(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}
