// mapview.js: the building blocks of the formula view.
//   MapView      a map you can point at (mouse, finger), with outlined boxes on it
//                (the kernel's window, the output cell being computed)
//   numberTable  a small grid of the real numbers, tinted with the map's colours
//   element      a new DOM element with a class and a text
//   agreement    "✓ the network computed the same number" (or how far apart)

import { colourBar, colourFor, drawMap, fmt, pickScale } from "./maps.js";

export function element(tag, className, text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

// "✓ the network computed 0.123 too" (or says how far apart they are). `size` is
// the sum of the sizes |term| of what the page added up: the two sums differ only
// by the rounding of their terms (6 digits sent, float32 on the server), far less
// than 1e-4 of it. (A fixed tolerance would tick any small gradient, right or not.)
export function agreement(ours, network, size = Math.abs(ours)) {
  const close = Math.abs(ours - network) <= 1e-4 * Math.max(size, Math.abs(network));
  return close
    ? `✓ the network computed ${fmt(network)} too`
    : `✗ the network computed ${fmt(network)} (difference ${fmt(ours - network)})`;
}

export class MapView {
  // options: title, scale ("auto", "grey", "heat", "diverging"), size (CSS pixels of
  // the longest side), onPoint(i, j) called when the pointer moves over cell (i, j)
  constructor(M, { title = "", scale = "auto", size = 200, onPoint = null } = {}) {
    this.scale = scale;
    this.size = size;
    this.element = document.createElement("figure");
    this.element.className = "map-view";
    const heading = document.createElement("figcaption");
    heading.className = "map-title";
    heading.textContent = title;
    this.frame = document.createElement("div");
    this.frame.className = "map-frame";
    this.canvas = document.createElement("canvas");
    this.canvas.className = "map";
    this.frame.append(this.canvas);
    this.bar = document.createElement("div");
    this.element.append(heading, this.frame, this.bar);
    this.boxes = [];
    if (onPoint) this.follow(onPoint);
    this.update(M);
  }

  update(M) {
    this.M = M;
    const [h, w] = M.shape;
    drawMap(this.canvas, M, this.scale);
    const cell = this.size / Math.max(h, w);
    this.frame.style.width = `${w * cell}px`;
    // a 1 x n strip of neurons stays tall enough to see and to point at
    this.frame.style.height = `${h === 1 ? Math.max(cell, 28) : h * cell}px`;
    this.bar.replaceChildren(colourBar(M, this.scale));
  }

  // The cell under the pointer, while it moves or when it taps.
  follow(onPoint) {
    this.frame.classList.add("pickable");
    const pick = (event) => {
      const box = this.frame.getBoundingClientRect();
      const [h, w] = this.M.shape;
      const i = Math.floor(((event.clientY - box.top) / box.height) * h);
      const j = Math.floor(((event.clientX - box.left) / box.width) * w);
      if (i >= 0 && i < h && j >= 0 && j < w) onPoint(i, j);
    };
    this.frame.addEventListener("pointermove", pick);
    this.frame.addEventListener("pointerdown", pick);
  }

  // boxes: [{top, left, height, width, kind}] in cells; kind picks the colour in CSS
  setBoxes(boxes) {
    for (const old of this.boxes) old.remove();
    const [h, w] = this.M.shape;
    this.boxes = boxes.map(({ top, left, height = 1, width = 1, kind = "window" }) => {
      const outline = document.createElement("div");
      outline.className = `box ${kind}`;
      outline.style.top = `${(100 * top) / h}%`;
      outline.style.left = `${(100 * left) / w}%`;
      outline.style.height = `${(100 * height) / h}%`;
      outline.style.width = `${(100 * width) / w}%`;
      this.frame.append(outline);
      return outline;
    });
  }
}

// A light tint of the map colour, so that black digits stay readable on it.
function tint([r, g, b]) {
  const light = (v) => Math.round(0.5 * v + 0.5 * 255);
  return `rgb(${light(r)}, ${light(g)}, ${light(b)})`;
}

// rows x cols numbers valueAt(i, j), each cell tinted by its value on the scale.
// options: scale, range [min, max] (default: the table's own), caption, and
// mark(i, j) -> true for cells to outline (a padding zero, a skipped product).
export function numberTable(rows, cols, valueAt, { scale = "diverging", range = null, caption = "", mark = null } = {}) {
  const values = [];
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) values.push(valueAt(i, j));
  }
  const [min, max] = range ?? [Math.min(...values), Math.max(...values)];
  const colour = colourFor(pickScale({ min, max }, scale), min, max);
  const table = document.createElement("table");
  table.className = "numbers";
  if (caption) table.createCaption().textContent = caption;
  const body = table.createTBody();
  for (let i = 0; i < rows; i++) {
    const row = body.insertRow();
    for (let j = 0; j < cols; j++) {
      const v = values[i * cols + j];
      const cell = row.insertCell();
      cell.textContent = fmt(v);
      cell.style.background = tint(colour(v));
      if (mark && mark(i, j)) cell.classList.add("marked");
    }
  }
  return table;
}
