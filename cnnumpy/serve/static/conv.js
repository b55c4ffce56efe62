// conv.js: the formula view of one convolution (CNN Explainer's "click a neuron"),
// forward here, backward in conv_backward.js. It uses the real numbers of
// POST /api/step/layer: x (C, H, W), weight (F, C, KH, KW), bias (F), y (F, H', W'),
// and the gradients dy, dW, db, dx of the same step.
//
//   y[f,i,j] = b[f] + Σ_c Σ_u Σ_v W[f,c,u,v] · x̃[c, i·s+u, j·s+v]
//
// where x̃ is x with P rows and columns of padding around it, and
// H' = (H + 2P - KH) // s + 1.

import { backwardView } from "./conv_backward.js";
import { biasOf, convLayer, forwardTerms, paddedInputMap } from "./conv_layer.js";
import { fmt, mapFrom } from "./maps.js";
import { agreement, element, MapView, numberTable } from "./mapview.js";
import { at } from "./tensor.js";

const PLAY_EVERY_MS = 350;

// A labelled <select> of 0..count-1.
function indexSelect(label, count, value, onChange) {
  const wrap = element("label", "", `${label} `);
  const select = document.createElement("select");
  for (let k = 0; k < count; k++) select.append(new Option(String(k), String(k)));
  select.value = String(value);
  select.addEventListener("change", () => onChange(Number(select.value)));
  wrap.append(select);
  return wrap;
}

// ---------------------------------------------------------------- forward view

class ForwardView {
  constructor(layer, view) {
    this.layer = layer;
    this.view = view; // {f, c} shared with the backward view
    this.i = 0;
    this.j = 0;
    this.timer = null;
    this.element = element("section", "formula");
    this.build();
  }

  build() {
    const { layer, view } = this;
    const [sh, sw] = layer.stride;
    const [[top], [left]] = layer.pads;
    this.element.append(
      element("h3", "", "Forward: the kernel slides over the input"),
      element("p", "equation", "y[f,i,j] = b[f] + Σ_c Σ_u Σ_v W[f,c,u,v] · x̃[c, i·s+u, j·s+v]"),
      element("p", "note",
        `x̃ is x with padding (${top} rows on top, ${left} columns on the left, ` +
        `${layer.mode}); stride s = ${sh === sw ? sh : `${sh}, ${sw}`}; ` +
        `kernel ${layer.KH}×${layer.KW}; output ${layer.outH}×${layer.outW}. ` +
        "Move over the output to pick a cell, or press Play. Outlined numbers come from the padding."),
    );
    const controls = element("div", "toolbar");
    this.playButton = element("button", "", "Play");
    this.playButton.addEventListener("click", () => this.togglePlay());
    const stepButton = element("button", "", "Step");
    stepButton.addEventListener("click", () => this.advance());
    this.where = element("span", "where");
    controls.append(this.playButton, stepButton, this.where);

    const f = view.f;
    const c = view.c;
    this.input = new MapView(paddedInputMap(layer, c), { title: `x̃[${c}] (input channel ${c}, padded)`, scale: "auto", size: 240 });
    this.kernel = new MapView(mapFrom(layer.KH, layer.KW, (u, v) => at(layer.weight, f, c, u, v)),
      { title: `W[${f},${c}] (the kernel)`, scale: "diverging", size: 120 });
    this.output = new MapView(mapFrom(layer.outH, layer.outW, (i, j) => at(layer.y, f, i, j)),
      { title: `y[${f}] (output channel ${f})`, scale: "auto", size: 240, onPoint: (i, j) => this.moveTo(i, j) });
    const maps = element("div", "map-row");
    maps.append(this.input.element, this.kernel.element, this.output.element);
    this.numbers = element("div", "numbers-row");
    this.sums = element("div", "sums");
    this.element.append(controls, maps, this.numbers, this.sums);
    this.show();
  }

  moveTo(i, j) {
    this.i = i;
    this.j = j;
    this.show();
  }

  // the next output cell, row by row, back to (0, 0) after the last
  advance() {
    let { i, j } = this;
    j += 1;
    if (j === this.layer.outW) [i, j] = [(i + 1) % this.layer.outH, 0];
    this.moveTo(i, j);
  }

  togglePlay() {
    if (this.timer) {
      this.stop();
      return;
    }
    this.timer = setInterval(() => {
      if (!this.element.isConnected) this.stop(); // the view was replaced
      else this.advance();
    }, PLAY_EVERY_MS);
    this.playButton.textContent = "Pause";
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.playButton.textContent = "Play";
  }

  show() {
    const { layer, i, j } = this;
    const { f, c } = this.view;
    const [sh, sw] = layer.stride;
    const r = i * sh;
    const q = j * sw;
    this.input.setBoxes([{ top: r, left: q, height: layer.KH, width: layer.KW }]);
    this.output.setBoxes([{ top: i, left: j, kind: "cell" }]);
    this.where.textContent = `output cell (i, j) = (${i}, ${j}); window rows ${r}…${r + layer.KH - 1}, columns ${q}…${q + layer.KW - 1} of x̃`;

    const terms = forwardTerms(layer, f, c, i, j);
    const { KH, KW } = layer;
    const inputRange = [this.input.M.min, this.input.M.max]; // colours as in the map above
    this.numbers.replaceChildren(
      numberTable(KH, KW, terms.patch, {
        scale: "auto",
        range: inputRange,
        caption: `x̃[${c}, ${r}+u, ${q}+v]`,
        mark: terms.isPadding, // outlined: padding, not image
      }),
      element("span", "operator", "·"),
      numberTable(KH, KW, terms.kernel, { caption: `W[${f},${c},u,v]` }),
      element("span", "operator", "="),
      numberTable(KH, KW, terms.product, { caption: "products" }),
    );
    this.showSums(terms.sum);
  }

  // channel c's sum, every channel's sum, the bias, and the network's own y
  showSums(channelSum) {
    const { layer, i, j } = this;
    const { f, c } = this.view;
    const perChannel = [];
    let size = 0;
    for (let k = 0; k < layer.C; k++) {
      const terms = forwardTerms(layer, f, k, i, j);
      perChannel.push(terms.sum);
      size += terms.size;
    }
    const total = perChannel.reduce((a, b) => a + b, 0);
    const bias = biasOf(layer, f);
    const computed = bias + total;
    const network = at(layer.y, f, i, j);
    const lines = [
      `Σ_u Σ_v of the products (channel ${c}) = ${fmt(channelSum)}`,
    ];
    if (layer.C > 1) {
      const shown = perChannel.slice(0, 16).map((s, k) => `${fmt(s)} (c=${k})`).join(" + ");
      lines.push(`Σ over the ${layer.C} input channels: ${shown}${layer.C > 16 ? " + …" : ""} = ${fmt(total)}`);
    }
    lines.push(`y[${f},${i},${j}] = b[${f}] + ${fmt(total)} = ${fmt(bias)} + ${fmt(total)} = ${fmt(computed)}`);
    lines.push(agreement(computed, network, size + Math.abs(bias)));
    this.sums.replaceChildren(...lines.map((text) => element("p", "sum", text)));
  }
}

// ---------------------------------------------------------------- the whole view

// The formula view of filter f of a convolution, in `box`; f and the input
// channel c can be changed from the view.
export function showConvFormula(box, answer, title, f) {
  const layer = convLayer(answer);
  const view = { f: Math.min(f, layer.F - 1), c: 0 };
  const render = () => {
    const head = element("div", "toolbar");
    head.append(
      element("h2", "", title),
      indexSelect("filter f", layer.F, view.f, (value) => {
        view.f = value;
        render();
      }),
      indexSelect("input channel c", layer.C, view.c, (value) => {
        view.c = value;
        render();
      }),
    );
    const forward = new ForwardView(layer, view);
    box.replaceChildren(head, forward.element, backwardView(layer, view));
  };
  render();
}
