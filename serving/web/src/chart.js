// uPlot, themed: bars for additive metrics (a bucket with no events is a real 0), a line for ratios and
// averages (a bucket with no events has no value), locale-aware axes, a tooltip, and resizing with its
// container. The canvas is decorative for assistive technology: every chart comes with a data table.

import uPlot from 'uplot';
import { h } from './dom.js';

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

function alpha(hex, a) {
  const m = /^#([0-9a-f]{6})$/i.exec(hex);
  if (!m) return hex;
  const n = parseInt(m[1], 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}

function tooltip(formatX, formatY) {
  let tip;
  return {
    hooks: {
      init(u) {
        tip = h('div', { class: 'll-tip', 'aria-hidden': 'true' });
        tip.hidden = true;
        u.over.append(tip);
      },
      setCursor(u) {
        const i = u.cursor.idx;
        const v = i === null || i === undefined ? null : u.data[1][i];
        if (v === null || v === undefined) {
          tip.hidden = true;
          return;
        }
        tip.hidden = false;
        tip.replaceChildren(
          h('span', { class: 'll-tip-x', text: formatX(u.data[0][i]) }),
          h('strong', { class: 'll-tip-y', text: formatY(v) }),
        );
        const x = u.valToPos(u.data[0][i], 'x');
        const y = u.valToPos(v, 'y');
        const flip = x > u.over.clientWidth * 0.6;
        tip.style.left = `${x}px`;
        tip.style.top = `${y}px`;
        tip.style.transform = `translate(${flip ? 'calc(-100% - 10px)' : '10px'}, -110%)`;
      },
    },
  };
}

/**
 * @param container element the chart fills
 * @param opts {kind: 'bars'|'line', label, utc, granularity, fmt, unit, range: [startSec, endSec]}
 */
export function createChart(container, opts) {
  const brand = cssVar('--ll-brand', '#3b5bdb');
  const font = cssVar('--ll-font', 'system-ui, sans-serif');
  const ink = '#4b5563';
  const { fmt, unit } = opts;
  const day = opts.granularity === 'day';
  const tz = opts.utc ? 'UTC' : undefined;
  const tickFmt = new Intl.DateTimeFormat(fmt.locale, day ? { month: 'short', day: 'numeric', timeZone: tz } : { hour: 'numeric', timeZone: tz });
  const dayFmt = new Intl.DateTimeFormat(fmt.locale, { month: 'short', day: 'numeric', timeZone: tz });
  const tipFmt = new Intl.DateTimeFormat(
    fmt.locale,
    day ? { dateStyle: 'medium', timeZone: tz } : { dateStyle: 'medium', timeStyle: 'short', timeZone: tz },
  );
  const height = () => (container.clientWidth < 480 ? 180 : 240);
  const bars = opts.kind === 'bars';

  const u = new uPlot(
    {
      width: Math.max(200, container.clientWidth),
      height: height(),
      padding: [12, 8, 0, 4],
      tzDate: opts.utc ? (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC') : undefined,
      legend: { show: false },
      cursor: { drag: { x: false, y: false, setScale: false }, points: { size: 8, fill: brand }, y: false },
      select: { show: false },
      scales: {
        x: { time: true, range: () => opts.range },
        y: { range: (self, min, max) => [Math.min(0, min ?? 0), max > 0 ? max * 1.12 : 1] },
      },
      axes: [
        {
          stroke: ink,
          font: `12px ${font}`,
          size: day ? 32 : 44,
          grid: { show: false },
          ticks: { stroke: '#d1d5db', width: 1, size: 4 },
          space: day ? 56 : 64,
          values: (self, splits) =>
            splits.map((s, i) => {
              const d = new Date(s * 1000);
              // an hour axis names the day at midnight and at its first tick
              if (!day && (i === 0 || (opts.utc ? d.getUTCHours() : d.getHours()) === 0)) return `${dayFmt.format(d)}\n${tickFmt.format(d)}`;
              return tickFmt.format(d);
            }),
        },
        {
          stroke: ink,
          font: `12px ${font}`,
          grid: { stroke: '#eceef2', width: 1 },
          ticks: { show: false },
          size: 64,
          gap: 6,
          values: (self, splits) => splits.map((v) => fmt.axis(v, unit)),
        },
      ],
      series: [
        {},
        {
          label: opts.label,
          stroke: brand,
          width: bars ? 0 : 2,
          fill: bars ? alpha(brand, 0.85) : alpha(brand, 0.1),
          paths: bars ? uPlot.paths.bars({ size: [0.72, 48, 2], gap: 1, radius: 0.15 }) : undefined,
          points: { show: !bars, size: 5, fill: '#fff', stroke: brand, width: 2 },
          spanGaps: false,
        },
      ],
      plugins: [tooltip((x) => tipFmt.format(new Date(x * 1000)), (v) => fmt.metric(v, unit))],
    },
    [[], []],
    container,
  );
  u.root.setAttribute('aria-hidden', 'true');
  const observer = new ResizeObserver(() => {
    const width = Math.max(200, container.clientWidth);
    if (width !== u.width || height() !== u.height) u.setSize({ width, height: height() });
  });
  observer.observe(container);
  return {
    set(xs, ys, range) {
      if (range) opts.range = range;
      u.setData([xs, ys]);
    },
    destroy() {
      observer.disconnect();
      u.destroy();
    },
  };
}

/** Every bucket of [start, end) (seconds), aligned like the API's buckets (UTC, epoch multiples). */
export function buckets(startMs, endMs, bucketMs) {
  const out = [];
  for (let t = Math.floor(startMs / bucketMs) * bucketMs; t < endMs; t += bucketMs) out.push(t);
  return out;
}

export const BUCKET_MS = { hour: 3_600_000, day: 86_400_000 };
