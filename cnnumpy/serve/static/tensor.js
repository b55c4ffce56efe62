// tensor.js: the nested lists of POST /api/step/layer ([[[...]]], shape (C, H, W)
// and so on) as flat arrays with a shape, and the conv arithmetic the formula
// view needs: which padding, which stride, which input pixel a kernel entry meets.

// [[1, 2], [3, 4]] -> {shape: [2, 2], data: [1, 2, 3, 4]}
export function fromNested(nested) {
  const shape = [];
  for (let level = nested; Array.isArray(level); level = level[0]) shape.push(level.length);
  const data = nested.flat(Infinity);
  return { shape, data };
}

// Drop leading axes of size 1 until the tensor has `rank` axes (a batch of one).
export function squeeze(t, rank) {
  let shape = t.shape;
  while (shape.length > rank && shape[0] === 1) shape = shape.slice(1);
  return { shape, data: t.data };
}

// t[i0, i1, ...] for a row-major tensor
export function at(t, ...index) {
  let offset = 0;
  for (let axis = 0; axis < t.shape.length; axis++) {
    offset = offset * t.shape[axis] + index[axis];
  }
  return t.data[offset];
}

// "stride": 2 or [2, 2] -> [2, 2]
export function pair(value) {
  return Array.isArray(value) ? [Number(value[0]), Number(value[1])] : [Number(value), Number(value)];
}

// The padding as [[top, bottom], [left, right]]. The server may send P, [PH, PW],
// [[top, bottom], [left, right]] or "same"/"valid"; for a word we work it back from
// the sizes: H_out = (H + top + bottom - KH) // S + 1, with the extra row at the
// bottom as TensorFlow puts it.
export function resolvePads(padding, kernel, stride, inSize, outSize) {
  if (typeof padding === "number") return [[padding, padding], [padding, padding]];
  if (Array.isArray(padding) && padding.length === 2) {
    if (Array.isArray(padding[0])) return padding.map((p) => [Number(p[0]), Number(p[1])]);
    return padding.map((p) => [Number(p), Number(p)]);
  }
  return [0, 1].map((axis) => {
    const total = Math.max((outSize[axis] - 1) * stride[axis] + kernel[axis] - inSize[axis], 0);
    const before = Math.floor(total / 2);
    return [before, total - before];
  });
}

// Which row of x an index of the padded x̃ reads, or null for a padding zero.
// "reflect" mirrors without repeating the edge, "replicate" repeats the edge.
function sourceIndex(index, size, mode) {
  if (index >= 0 && index < size) return index;
  if (mode === "reflect") return index < 0 ? -index : 2 * (size - 1) - index;
  if (mode === "replicate") return Math.min(size - 1, Math.max(0, index));
  return null;
}

// x̃[c, r, q]: the padded input as the kernel sees it (r, q count from the padded corner).
export function paddedValue(x, c, r, q, pads, mode) {
  const [, H, W] = x.shape;
  const i = sourceIndex(r - pads[0][0], H, mode);
  const j = sourceIndex(q - pads[1][0], W, mode);
  return i === null || j === null ? 0 : at(x, c, i, j);
}
