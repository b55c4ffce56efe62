// conv_layer.js: one convolution's numbers from POST /api/step/layer as tensors,
// and the arithmetic of its forward pass, shared by the forward and backward views.

import { mapFrom } from "./maps.js";
import { at, fromNested, pair, paddedValue, resolvePads, squeeze } from "./tensor.js";

// The answer's nested lists as tensors, plus the geometry of the layer.
export function convLayer(answer) {
  const tensor = (key, rank) => squeeze(fromNested(answer[key]), rank);
  const layer = {
    x: tensor("x", 3),
    weight: tensor("weight", 4),
    bias: answer.bias ? tensor("bias", 1) : null,
    y: tensor("y", 3),
    dy: tensor("dy", 3),
    dW: tensor("dW", 4),
    db: answer.db ? tensor("db", 1) : null,
    dx: tensor("dx", 3),
    mode: answer.padding_mode ?? "zeros",
  };
  [layer.F, layer.C, layer.KH, layer.KW] = layer.weight.shape;
  [, layer.inH, layer.inW] = layer.x.shape;
  [, layer.outH, layer.outW] = layer.y.shape;
  layer.stride = pair(answer.stride ?? 1);
  // "pads" [[top, bottom], [left, right]] when the server resolved them, else "padding"
  layer.pads = resolvePads(
    answer.pads ?? answer.padding ?? 0,
    [layer.KH, layer.KW],
    layer.stride,
    [layer.inH, layer.inW],
    [layer.outH, layer.outW],
  );
  return layer;
}

export const biasOf = (layer, f) => (layer.bias ? at(layer.bias, f) : 0);

// x̃[c] as a map: the padded input channel c, (H + top + bottom) x (W + left + right).
export function paddedInputMap(layer, c) {
  const [[top, bottom], [left, right]] = layer.pads;
  return mapFrom(layer.inH + top + bottom, layer.inW + left + right, (r, q) =>
    paddedValue(layer.x, c, r, q, layer.pads, layer.mode),
  );
}

// The forward dot product for one output cell and one input channel: the terms
// W[f,c,u,v] · x̃[c, i·s+u, j·s+v] and their sum.
export function forwardTerms(layer, f, c, i, j) {
  const [sh, sw] = layer.stride;
  const patch = (u, v) => paddedValue(layer.x, c, i * sh + u, j * sw + v, layer.pads, layer.mode);
  const kernel = (u, v) => at(layer.weight, f, c, u, v);
  let sum = 0;
  let size = 0; // the sum of |products|, for the tolerance of a check (agreement)
  for (let u = 0; u < layer.KH; u++) {
    for (let v = 0; v < layer.KW; v++) {
      sum += kernel(u, v) * patch(u, v);
      size += Math.abs(kernel(u, v) * patch(u, v));
    }
  }
  // a cell of the window that falls on the padding, not on the image
  const [[top], [left]] = layer.pads;
  const isPadding = (u, v) => {
    const r = i * sh + u - top;
    const q = j * sw + v - left;
    return r < 0 || q < 0 || r >= layer.inH || q >= layer.inW;
  };
  return { patch, kernel, product: (u, v) => kernel(u, v) * patch(u, v), sum, size, isPadding };
}
