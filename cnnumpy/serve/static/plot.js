// plot.js: a small line chart on a <canvas>, for the loss and accuracy curves.
//
//   const chart = new LineChart(canvas, { xLabel: "epoch", yLabel: "loss" });
//   chart.setSeries([{ label: "train", colour: "#0072b2", points: [[x, y], ...] }]);
//
// A series may be `dashed` or drawn as `dots`; one with a `label` is named in the
// legend under the canvas. The canvas gets data-points = the number of points
// drawn, so that a test can watch a curve grow.

const MARGIN = { left: 70, right: 20, top: 20, bottom: 50 };
const FONT = "16px system-ui, sans-serif";

// About `count` round tick values (1, 2 or 5 times a power of ten) covering [low, high].
function niceTicks(low, high, count = 5) {
  const raw = (high - low) / count || 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) {
    ticks.push(Number(t.toPrecision(12)));
  }
  return ticks;
}

// [low, high] of the axis: a fixed end stays, a free end gets 5% of room so that
// the curve does not run along the frame.
function range(values, fixedLow, fixedHigh) {
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (!Number.isFinite(low) || !Number.isFinite(high)) return [fixedLow ?? 0, fixedHigh ?? 1];
  const room = 0.05 * (high - low || 1);
  low = fixedLow ?? low - room;
  high = fixedHigh ?? high + room;
  if (low >= high) high = low + 1;
  return [low, high];
}

export class LineChart {
  constructor(canvas, { xLabel = "", yLabel = "", xMin = null, yMin = null, yMax = null } = {}) {
    this.canvas = canvas;
    this.options = { xLabel, yLabel, xMin, yMin, yMax };
    this.series = [];
    // redraw when the canvas changes size (window resized, tab shown)
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  setSeries(series) {
    this.series = series;
    const count = series.reduce((total, s) => total + s.points.length, 0);
    this.canvas.dataset.points = String(count);
    this.showLegend();
    this.draw();
  }

  draw() {
    const canvas = this.canvas;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (width === 0 || height === 0) return; // hidden tab: drawn when shown
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const points = this.series.flatMap((s) => s.points);
    const { xMin, yMin, yMax } = this.options;
    const [x0, x1] = range(points.map((p) => p[0]), xMin);
    const [y0, y1] = range(points.map((p) => p[1]), yMin, yMax);
    const plot = {
      left: MARGIN.left,
      top: MARGIN.top,
      width: width - MARGIN.left - MARGIN.right,
      height: height - MARGIN.top - MARGIN.bottom,
    };
    const sx = (x) => plot.left + ((x - x0) / (x1 - x0)) * plot.width;
    const sy = (y) => plot.top + (1 - (y - y0) / (y1 - y0)) * plot.height;

    this.drawAxes(ctx, plot, { x0, x1, y0, y1, sx, sy });
    ctx.save();
    ctx.beginPath();
    ctx.rect(plot.left - 6, plot.top - 6, plot.width + 12, plot.height + 12); // room for a dot
    ctx.clip();
    for (const s of this.series) drawSeries(ctx, s, sx, sy);
    ctx.restore();
  }

  drawAxes(ctx, plot, { x0, x1, y0, y1, sx, sy }) {
    ctx.font = FONT;
    ctx.lineWidth = 1;
    ctx.strokeStyle = "#ccc";
    ctx.fillStyle = "#222";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const t of niceTicks(y0, y1)) {
      ctx.beginPath();
      ctx.moveTo(plot.left, sy(t));
      ctx.lineTo(plot.left + plot.width, sy(t));
      ctx.stroke();
      ctx.fillText(String(t), plot.left - 8, sy(t));
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (const t of niceTicks(x0, x1)) {
      ctx.fillText(String(t), sx(t), plot.top + plot.height + 6);
    }
    ctx.strokeStyle = "#222";
    ctx.strokeRect(plot.left, plot.top, plot.width, plot.height);
    ctx.fillText(this.options.xLabel, plot.left + plot.width / 2, plot.top + plot.height + 28);
    ctx.save();
    ctx.translate(18, plot.top + plot.height / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle";
    ctx.fillText(this.options.yLabel, 0, 0);
    ctx.restore();
  }

  // The legend is HTML under the canvas, so that it never hides a curve.
  showLegend() {
    if (!this.legend) {
      this.legend = document.createElement("ul");
      this.legend.className = "legend";
      this.canvas.after(this.legend);
    }
    const items = this.series
      .filter((s) => s.label)
      .map((s) => {
        const item = document.createElement("li");
        const swatch = document.createElement("span");
        swatch.className = s.dots ? "swatch dots" : s.dashed ? "swatch dashed" : "swatch";
        swatch.style.borderColor = s.colour;
        swatch.style.backgroundColor = s.dots ? s.colour : "transparent";
        item.append(swatch, s.label);
        return item;
      });
    this.legend.replaceChildren(...items);
  }
}

function drawSeries(ctx, s, sx, sy) {
  ctx.strokeStyle = s.colour;
  ctx.fillStyle = s.colour;
  ctx.lineWidth = 3;
  if (s.dots) {
    for (const [x, y] of s.points) {
      ctx.beginPath();
      ctx.arc(sx(x), sy(y), 5, 0, 2 * Math.PI);
      ctx.fill();
    }
    return;
  }
  ctx.setLineDash(s.dashed ? [8, 5] : []);
  ctx.beginPath();
  s.points.forEach(([x, y], k) => (k === 0 ? ctx.moveTo(sx(x), sy(y)) : ctx.lineTo(sx(x), sy(y))));
  ctx.stroke();
  if (s.points.length === 1) {
    // one point makes no line: show it as a dot
    ctx.beginPath();
    ctx.arc(sx(s.points[0][0]), sy(s.points[0][1]), 4, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.setLineDash([]);
}

// Colours told apart with most kinds of colour blindness (Okabe and Ito, 2008).
export const COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000"];
