// conv_backward.js: the backward pass of one convolution, as the notes derive it.
// dy = dL/dy arrives from the layer above; from it the layer computes
//
//   db[f]       = Σ_i Σ_j dy[f,i,j]
//   dW[f,c,u,v] = Σ_i Σ_j dy[f,i,j] · x̃[c, i·s+u, j·s+v]     (input correlated with dy)
//   dx[c,h,w]   = Σ_f Σ_u Σ_v rot180(W)[f,c,u,v] · dỹ[f, h+u, w+v]
//                                 (the full convolution of dy with the turned kernel)
//
// where dỹ is dy with s-1 zeros between its entries (stride s), padded by K-1-P.

import { biasOf, paddedInputMap } from "./conv_layer.js";
import { fmt, mapFrom } from "./maps.js";
import { agreement, element, MapView, numberTable } from "./mapview.js";
import { at, paddedValue } from "./tensor.js";

const MAX_TABLE_CELLS = 64; // larger sums are shown as maps only

// ---------------------------------------------------------------- db

function biasPart(layer, f) {
  const part = element("section", "formula");
  let sum = 0;
  let size = 0;
  for (let i = 0; i < layer.outH; i++) {
    for (let j = 0; j < layer.outW; j++) {
      sum += at(layer.dy, f, i, j);
      size += Math.abs(at(layer.dy, f, i, j));
    }
  }
  const dyMap = mapFrom(layer.outH, layer.outW, (i, j) => at(layer.dy, f, i, j));
  part.append(
    element("h3", "", "Backward: the gradient dy arrives from the layer above"),
    element("p", "note",
      `dy[${f}] = dL/dy[${f}]: how the loss changes with each output of filter ${f} ` +
      `(b[${f}] = ${fmt(biasOf(layer, f))}). The bias touches every output, so its gradient is their sum.`),
    new MapView(dyMap, { title: `dy[${f}]`, scale: "diverging", size: 200 }).element,
    element("p", "equation", "db[f] = Σ_i Σ_j dy[f,i,j]"),
    element("p", "sum", `db[${f}] = ${fmt(sum)}`),
  );
  if (layer.db) part.append(element("p", "sum", agreement(sum, at(layer.db, f), size)));
  if (dyMap.min === 0 && dyMap.max === 0) {
    part.append(element("p", "note",
      `dy[${f}] is zero everywhere: the loss does not depend on this filter for this image ` +
      "(a ReLU or max pooling above let none of its outputs through), so every gradient " +
      "below is zero too. Pick another filter."));
  }
  return part;
}

// ---------------------------------------------------------------- dW

// The terms of dW[f,c,u,v]: dy[f,i,j] times the input pixel the kernel entry (u, v)
// met when the window was at output cell (i, j). (Exported, like inputTerms, so that
// the sums can be checked against a brute-force convolution outside the page.)
export function weightTerms(layer, f, c, u, v) {
  const [sh, sw] = layer.stride;
  const input = (i, j) => paddedValue(layer.x, c, i * sh + u, j * sw + v, layer.pads, layer.mode);
  const grad = (i, j) => at(layer.dy, f, i, j);
  let sum = 0;
  let size = 0; // the sum of |products|, for the tolerance of a check (agreement)
  for (let i = 0; i < layer.outH; i++) {
    for (let j = 0; j < layer.outW; j++) {
      sum += input(i, j) * grad(i, j);
      size += Math.abs(input(i, j) * grad(i, j));
    }
  }
  return { input, grad, product: (i, j) => input(i, j) * grad(i, j), sum, size };
}

function weightPart(layer, f, c) {
  const part = element("section", "formula");
  const { outH, outW, KH, KW } = layer;
  const [sh, sw] = layer.stride;
  part.append(
    element("h3", "", "dW: the input correlated with dy"),
    element("p", "equation", "dW[f,c,u,v] = Σ_i Σ_j dy[f,i,j] · x̃[c, i·s+u, j·s+v]"),
    element("p", "note",
      "Kernel entry (u, v) met one input pixel at every position of the window; its " +
      "gradient adds up those pixels, each weighted by the gradient of the output it made. " +
      "Point at an entry of dW."),
  );
  const dWMap = mapFrom(KH, KW, (u, v) => at(layer.dW, f, c, u, v));
  const dWView = new MapView(dWMap, { title: `dW[${f},${c}]`, scale: "diverging", size: 160, onPoint: (u, v) => show(u, v) });
  const inputView = new MapView(paddedInputMap(layer, c), { title: `x̃[${c}]`, scale: "auto", size: 200 });
  const maps = element("div", "map-row");
  const details = element("div", "map-row");
  const sums = element("div", "sums");
  maps.append(dWView.element, inputView.element);
  part.append(maps, details, sums);

  function show(u, v) {
    const terms = weightTerms(layer, f, c, u, v);
    dWView.setBoxes([{ top: u, left: v, kind: "cell" }]);
    // the pixels entry (u, v) met: every s-th pixel of this region
    inputView.setBoxes([{ top: u, left: v, height: (outH - 1) * sh + 1, width: (outW - 1) * sw + 1 }]);
    const stride = sh > 1 || sw > 1 ? ` (every ${sh === sw ? sh : `${sh}, ${sw}`}-th pixel)` : "";
    const inputTitle = `x̃[${c}, i·s+${u}, j·s+${v}]${stride}`;
    if (outH * outW <= MAX_TABLE_CELLS) {
      details.replaceChildren(
        numberTable(outH, outW, terms.input, { scale: "auto", caption: inputTitle }),
        element("span", "operator", "·"),
        numberTable(outH, outW, terms.grad, { caption: `dy[${f},i,j]` }),
        element("span", "operator", "="),
        numberTable(outH, outW, terms.product, { caption: "products" }),
      );
    } else {
      const size = 160;
      details.replaceChildren(
        new MapView(mapFrom(outH, outW, terms.input), { title: inputTitle, size }).element,
        element("span", "operator", "·"),
        new MapView(mapFrom(outH, outW, terms.grad), { title: `dy[${f}]`, scale: "diverging", size }).element,
        element("span", "operator", "="),
        new MapView(mapFrom(outH, outW, terms.product), { title: "products", scale: "diverging", size }).element,
      );
    }
    sums.replaceChildren(
      element("p", "sum", `dW[${f},${c},${u},${v}] = Σ_i Σ_j of the ${outH * outW} products = ${fmt(terms.sum)}`),
      element("p", "sum", agreement(terms.sum, at(layer.dW, f, c, u, v), terms.size)),
    );
  }
  show(...largest(dWMap));
  return part;
}

// ---------------------------------------------------------------- dx

// dỹ[f]: dy[f] spread out by the stride and padded by K-1-P, so that dx is a plain
// sliding window over it: dx[c,h,w] uses the window at (h, w). Size (H+KH-1) x (W+KW-1).
function spreadGradient(layer, f) {
  const [sh, sw] = layer.stride;
  const [[top], [left]] = layer.pads;
  const value = (r, q) => {
    const t = r - (layer.KH - 1 - top); // position in the spread-out dy
    const s = q - (layer.KW - 1 - left);
    if (t < 0 || s < 0 || t % sh !== 0 || s % sw !== 0) return 0;
    const i = t / sh;
    const j = s / sw;
    return i < layer.outH && j < layer.outW ? at(layer.dy, f, i, j) : 0;
  };
  return { value, rows: layer.inH + layer.KH - 1, cols: layer.inW + layer.KW - 1 };
}

export function inputTerms(layer, f, c, h, w) {
  const spread = spreadGradient(layer, f);
  const turned = (u, v) => at(layer.weight, f, c, layer.KH - 1 - u, layer.KW - 1 - v);
  const window = (u, v) => spread.value(h + u, w + v);
  let sum = 0;
  let size = 0;
  for (let u = 0; u < layer.KH; u++) {
    for (let v = 0; v < layer.KW; v++) {
      sum += turned(u, v) * window(u, v);
      size += Math.abs(turned(u, v) * window(u, v));
    }
  }
  return { turned, window, product: (u, v) => turned(u, v) * window(u, v), sum, size, spread };
}

function inputPart(layer, view) {
  const { f, c } = view;
  const { KH, KW, inH, inW } = layer;
  const part = element("section", "formula");
  const [[top], [left]] = layer.pads;
  part.append(
    element("h3", "", "dx: the full convolution of dy with the kernel turned 180°"),
    element("p", "equation", "dx[c,h,w] = Σ_f Σ_u Σ_v rot180(W)[f,c,u,v] · dỹ[f, h+u, w+v]"),
    element("p", "note",
      `dỹ[${f}] is dy[${f}]` +
      (layer.stride.some((s) => s > 1) ? " with zeros between its entries (the stride)," : "") +
      ` padded by K−1−P = ${KH - 1 - top} rows and ${KW - 1 - left} columns. ` +
      "Every input pixel gets gradient from every output it helped make; turning the " +
      "kernel lines the weights up with those outputs. Point at a pixel of dx."),
  );
  if (layer.mode !== "zeros") {
    part.append(element("p", "note",
      `With ${layer.mode} padding, the gradient of the padding copies flows back to the border pixels too; ` +
      "the formula shows the inside part."));
  }
  const dxMap = mapFrom(inH, inW, (h, w) => at(layer.dx, c, h, w));
  const dxView = new MapView(dxMap, { title: `dx[${c}] (to the layer below)`, scale: "diverging", size: 200, onPoint: (h, w) => show(h, w) });
  const spread = spreadGradient(layer, f);
  const spreadView = new MapView(mapFrom(spread.rows, spread.cols, spread.value), { title: `dỹ[${f}]`, scale: "diverging", size: 200 });
  const maps = element("div", "map-row");
  maps.append(dxView.element, spreadView.element);
  const numbers = element("div", "numbers-row");
  const sums = element("div", "sums");
  part.append(maps, numbers, sums);

  function show(h, w) {
    const terms = inputTerms(layer, f, c, h, w);
    dxView.setBoxes([{ top: h, left: w, kind: "cell" }]);
    spreadView.setBoxes([{ top: h, left: w, height: KH, width: KW }]);
    numbers.replaceChildren(
      numberTable(KH, KW, terms.window, { caption: `dỹ[${f}, ${h}+u, ${w}+v]` }),
      element("span", "operator", "·"),
      numberTable(KH, KW, terms.turned, { caption: `rot180(W)[${f},${c}]` }),
      element("span", "operator", "="),
      numberTable(KH, KW, terms.product, { caption: "products" }),
    );
    // dx sums over every filter: the one above, then all of them
    const perFilter = [];
    let size = 0;
    for (let k = 0; k < layer.F; k++) {
      const each = inputTerms(layer, k, c, h, w);
      perFilter.push(each.sum);
      size += each.size;
    }
    const total = perFilter.reduce((a, b) => a + b, 0);
    const shown = perFilter.slice(0, 16).map((s, k) => `${fmt(s)} (f=${k})`).join(" + ");
    const lines = [
      `Σ_u Σ_v of the products (filter ${f}) = ${fmt(terms.sum)}`,
      `dx[${c},${h},${w}] = Σ over the ${layer.F} filters: ${shown}${layer.F > 16 ? " + …" : ""} = ${fmt(total)}`,
      agreement(total, at(layer.dx, c, h, w), size),
    ];
    sums.replaceChildren(...lines.map((text) => element("p", "sum", text)));
  }
  show(...largest(dxMap));
  return part;
}

// (i, j) of the largest |value| of a map: the most interesting place to start
function largest(M) {
  let best = 0;
  M.data.forEach((v, k) => {
    if (Math.abs(v) > Math.abs(M.data[best])) best = k;
  });
  return [Math.floor(best / M.shape[1]), best % M.shape[1]];
}

// ---------------------------------------------------------------- all three

export function backwardView(layer, view) {
  const box = element("div", "backward");
  box.append(biasPart(layer, view.f), weightPart(layer, view.f, view.c), inputPart(layer, view));
  return box;
}
