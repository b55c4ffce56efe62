// maps.js: draw a "map" M = {shape: [h, w], min, max, data: [row-major numbers]}
// into a canvas, one canvas pixel per value; CSS then enlarges it without blurring
// (image-rendering: pixelated in style.css).
//
// Three colour scales:
//   "grey"      images: min -> black, max -> white
//   "heat"      values >= 0 (saliency, Grad-CAM): black -> purple -> red -> yellow
//   "diverging" signed values (gradients, weights): blue < 0 < red, white at 0,
//               symmetric so that the same colour means the same size either side
//   "auto"      diverging when the map has both signs, heat otherwise
//
// Colour pictures are drawn as they are: a photo (photoCanvas) and the kernels of a
// first convolution that reads RGB (rgbCanvas, used by showFilters).

// Colour stops [position, [r, g, b]]; colours in between are mixed linearly.
const HEAT = [
  [0.0, [0, 0, 0]],
  [0.3, [100, 20, 120]],
  [0.6, [225, 60, 45]],
  [0.85, [250, 185, 40]],
  [1.0, [255, 255, 210]],
];
const DIVERGING = [
  [0.0, [20, 60, 160]], // most negative
  [0.25, [90, 150, 220]],
  [0.5, [250, 250, 250]], // zero
  [0.75, [235, 120, 90]],
  [1.0, [170, 15, 30]], // most positive
];

function mix(stops, t) {
  t = Math.min(1, Math.max(0, t));
  for (let k = 1; k < stops.length; k++) {
    const [t1, c1] = stops[k];
    if (t <= t1) {
      const [t0, c0] = stops[k - 1];
      const a = (t - t0) / (t1 - t0);
      return c0.map((v, i) => Math.round(v + a * (c1[i] - v)));
    }
  }
  return stops[stops.length - 1][1];
}

export function pickScale(M, scale) {
  if (scale !== "auto") return scale;
  return M.min < 0 && M.max > 0 ? "diverging" : "heat";
}

// A function value -> [r, g, b] for the map's range and the scale.
export function colourFor(scale, min, max) {
  if (scale === "diverging") {
    const limit = Math.max(Math.abs(min), Math.abs(max)) || 1;
    return (v) => mix(DIVERGING, 0.5 + v / (2 * limit));
  }
  const span = max - min || 1;
  if (scale === "heat") return (v) => mix(HEAT, (v - min) / span);
  return (v) => {
    const g = Math.round((255 * (v - min)) / span);
    return [g, g, g];
  };
}

// Paint M into the canvas (resizing it to w x h).
export function drawMap(canvas, M, scale = "auto") {
  const [h, w] = M.shape;
  canvas.width = w;
  canvas.height = h;
  const colour = colourFor(pickScale(M, scale), M.min, M.max);
  const image = canvas.getContext("2d").createImageData(w, h);
  for (let k = 0; k < h * w; k++) {
    const [r, g, b] = colour(M.data[k]);
    image.data.set([r, g, b, 255], 4 * k);
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
}

// How many CSS pixels one value gets: the longest side near `size` pixels;
// a flat 1 x n strip gets cells wide enough to see one neuron.
function cellSize(shape, size = 64) {
  const [h, w] = shape;
  if (h === 1) return Math.max(2, Math.min(24, Math.floor(480 / w)));
  return Math.max(1, size / Math.max(h, w));
}

// A new canvas showing M, sized on screen by cellSize (or options.cell).
export function mapCanvas(M, { scale = "auto", size = 64, cell } = {}) {
  const canvas = document.createElement("canvas");
  canvas.className = "map";
  drawMap(canvas, M, scale);
  const px = cell ?? cellSize(M.shape, size);
  canvas.style.width = `${M.shape[1] * px}px`;
  canvas.style.height = `${Math.max(M.shape[0] * px, M.shape[0] === 1 ? 12 : 0)}px`;
  return canvas;
}

// Three maps (red, green, blue channels of one colour filter) as one colour
// picture, all three on one common scale so that their balance shows.
export function rgbCanvas([red, green, blue], { size = 48 } = {}) {
  const [h, w] = red.shape;
  const low = Math.min(red.min, green.min, blue.min);
  const span = Math.max(red.max, green.max, blue.max) - low || 1;
  const canvas = document.createElement("canvas");
  canvas.className = "map";
  canvas.width = w;
  canvas.height = h;
  const image = canvas.getContext("2d").createImageData(w, h);
  for (let k = 0; k < h * w; k++) {
    const level = (M) => Math.round((255 * (M.data[k] - low)) / span);
    image.data.set([level(red), level(green), level(blue), 255], 4 * k);
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
  const px = cellSize(red.shape, size);
  canvas.style.width = `${w * px}px`;
  canvas.style.height = `${h * px}px`;
  return canvas;
}

// A short number for a caption or a table cell: 3 significant digits.
export function fmt(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (value === 0) return "0";
  const size = Math.abs(value);
  if (size >= 1e4 || size < 1e-3) return value.toExponential(2);
  return String(Number(value.toPrecision(3)));
}

// A colour bar under a map: the scale from min to max with both ends written.
export function colourBar(M, scale = "auto") {
  const kind = pickScale(M, scale);
  let low = M.min;
  let high = M.max;
  if (kind === "diverging") {
    high = Math.max(Math.abs(M.min), Math.abs(M.max));
    low = -high;
  }
  const steps = 64;
  const ramp = {
    shape: [1, steps],
    min: low,
    max: high,
    data: Array.from({ length: steps }, (_, k) => low + ((high - low) * k) / (steps - 1)),
  };
  const bar = document.createElement("div");
  bar.className = "colour-bar";
  const canvas = document.createElement("canvas");
  drawMap(canvas, ramp, kind);
  const left = document.createElement("span");
  left.textContent = fmt(low);
  const right = document.createElement("span");
  right.textContent = fmt(high);
  bar.append(left, canvas, right);
  return bar;
}

// A map M made from any 2-D slice: rows x cols values read by valueAt(i, j).
export function mapFrom(rows, cols, valueAt) {
  const data = new Array(rows * cols);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const v = valueAt(i, j);
      data[i * cols + j] = v;
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  if (rows * cols === 0) return { shape: [rows, cols], min: 0, max: 0, data };
  return { shape: [rows, cols], min, max, data };
}

// A colour picture: M.rgb holds its pixels row-major, three values 0..255 each
// (what the model saw of a photo), drawn at about `size` CSS pixels a side.
export function photoCanvas(M, { size = 64 } = {}) {
  const [h, w] = M.shape;
  const canvas = document.createElement("canvas");
  canvas.className = "map";
  canvas.width = w;
  canvas.height = h;
  const image = canvas.getContext("2d").createImageData(w, h);
  for (let k = 0; k < h * w; k++) {
    image.data.set([M.rgb[3 * k], M.rgb[3 * k + 1], M.rgb[3 * k + 2], 255], 4 * k);
  }
  canvas.getContext("2d").putImageData(image, 0, 0);
  const px = cellSize(M.shape, size);
  canvas.style.width = `${w * px}px`;
  canvas.style.height = `${h * px}px`;
  return canvas;
}

// The first convolution's kernels. shape [F, C, k, k], maps in (f, c) order.
// Three input channels: each filter as one colour picture; otherwise a row of
// C grey-scale kernels per filter (blue negative, red positive).
export function showFilters(box, filters) {
  box.replaceChildren();
  if (!filters || !filters.maps || filters.maps.length === 0) {
    box.textContent = "This model has no convolution.";
    return;
  }
  const [F, C] = filters.shape;
  const title = document.createElement("p");
  title.className = "note";
  const name = filters.name ? `${filters.name}, ` : "";
  title.textContent = `layer ${filters.layer} (${name}weights ${JSON.stringify(filters.shape)})`;
  const grid = document.createElement("div");
  grid.className = "map-grid";
  const shown = Math.floor(filters.maps.length / C);
  for (let f = 0; f < Math.min(F, shown); f++) {
    const own = filters.maps.slice(f * C, (f + 1) * C);
    const cell = document.createElement("div");
    cell.className = "filter";
    cell.title = `filter ${f}`;
    if (C === 3) cell.append(rgbCanvas(own, { size: 48 }));
    else for (const M of own) cell.append(mapCanvas(M, { scale: "diverging", size: 48 }));
    grid.append(cell);
  }
  box.append(title, grid);
}
