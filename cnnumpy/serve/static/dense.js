// dense.js: the formula view of one Dense (fully connected) layer, for one neuron j.
// cnnumpy keeps W as (inputs, units), so that for one example
//
//   y[j]   = b[j] + Σ_i W[i,j] · x[i]
//   dW[i,j] = x[i] · dy[j]        db[j] = dy[j]        dx[i] = Σ_j W[i,j] · dy[j]

import { fmt, mapFrom } from "./maps.js";
import { agreement, element, MapView } from "./mapview.js";
import { fromNested, squeeze } from "./tensor.js";

const TOP_TERMS = 8; // the largest terms of a long sum are listed with their numbers

function denseLayer(answer) {
  const vector = (key) => (answer[key] ? squeeze(fromNested(answer[key]), 1).data : null);
  const x = vector("x") ?? [];
  const weight = squeeze(fromNested(answer.weight), 2);
  const [rows, cols] = weight.shape;
  // (inputs, units) as cnnumpy stores it; (units, inputs) read the other way round
  const inputsFirst = rows === x.length;
  const D = inputsFirst ? rows : cols;
  const U = inputsFirst ? cols : rows;
  const W = (i, j) => (inputsFirst ? weight.data[i * U + j] : weight.data[j * D + i]);
  return { x, W, D, U, bias: vector("bias"), y: vector("y"), dy: vector("dy"), db: vector("db"), dx: vector("dx") };
}

const strip = (n, valueAt) => mapFrom(1, n, (_, k) => valueAt(k));

// A table of the largest terms of a sum: index, the two factors, the product.
function termsTable(count, indexName, factors, product) {
  const order = [...Array(count).keys()].sort((a, b) => Math.abs(product(b)) - Math.abs(product(a)));
  const table = element("table", "numbers terms");
  table.createCaption().textContent = `the ${Math.min(TOP_TERMS, count)} largest of the ${count} terms`;
  const head = table.createTHead().insertRow();
  for (const title of [indexName, ...factors.map((f) => f.name), "product"]) {
    head.append(element("th", "", title));
  }
  const body = table.createTBody();
  for (const k of order.slice(0, TOP_TERMS)) {
    const row = body.insertRow();
    row.insertCell().textContent = String(k);
    for (const factor of factors) row.insertCell().textContent = fmt(factor.at(k));
    row.insertCell().textContent = fmt(product(k));
  }
  return table;
}

function forwardPart(layer, j) {
  const { x, W, D } = layer;
  const product = (i) => W(i, j) * x[i];
  let sum = 0;
  let size = 0; // the sum of |products|, for the tolerance of the check
  for (let i = 0; i < D; i++) {
    sum += product(i);
    size += Math.abs(product(i));
  }
  const bias = layer.bias ? layer.bias[j] : 0;
  const part = element("section", "formula");
  const maps = element("div", "map-column");
  maps.append(
    new MapView(strip(D, (i) => x[i]), { title: "x (the input, flattened)", size: 480 }).element,
    new MapView(strip(D, (i) => W(i, j)), { title: `W[:, ${j}] (neuron ${j}'s weights)`, scale: "diverging", size: 480 }).element,
    new MapView(strip(D, product), { title: "products", scale: "diverging", size: 480 }).element,
  );
  part.append(
    element("h3", "", `Forward: neuron ${j} weighs every input`),
    element("p", "equation", "y[j] = b[j] + Σ_i W[i,j] · x[i]"),
    maps,
    termsTable(D, "i", [{ name: "x[i]", at: (i) => x[i] }, { name: `W[i,${j}]`, at: (i) => W(i, j) }], product),
    element("p", "sum", `y[${j}] = b[${j}] + Σ_i = ${fmt(bias)} + ${fmt(sum)} = ${fmt(bias + sum)}`),
  );
  if (layer.y) part.append(element("p", "sum", agreement(bias + sum, layer.y[j], size + Math.abs(bias))));
  return part;
}

function backwardPart(layer, j) {
  const { x, W, D, U, dy } = layer;
  const part = element("section", "formula");
  part.append(
    element("h3", "", "Backward"),
    element("p", "equation", "dW[i,j] = x[i] · dy[j]      db[j] = dy[j]      dx[i] = Σ_j W[i,j] · dy[j]"),
  );
  if (!dy) return part;
  const dyView = new MapView(strip(U, (k) => dy[k]), { title: "dy (arriving from above)", scale: "diverging", size: 480 });
  dyView.setBoxes([{ top: 0, left: j, kind: "cell" }]);
  part.append(
    dyView.element,
    element("p", "sum", `db[${j}] = dy[${j}] = ${fmt(dy[j])}; dW[:, ${j}] is x scaled by dy[${j}]:`),
    new MapView(strip(D, (i) => x[i] * dy[j]), { title: `dW[:, ${j}] = x · ${fmt(dy[j])}`, scale: "diverging", size: 480 }).element,
    element("p", "note", "Point at an input of dx: it collects the gradient of every neuron it feeds."),
  );
  if (!layer.dx) return part;
  const details = element("div", "sums");
  const dxView = new MapView(strip(D, (i) => layer.dx[i]), {
    title: "dx (to the layer below)",
    scale: "diverging",
    size: 480,
    onPoint: (_, i) => show(i),
  });
  part.append(dxView.element, details);
  function show(i) {
    dxView.setBoxes([{ top: 0, left: i, kind: "cell" }]);
    const product = (k) => W(i, k) * dy[k];
    let sum = 0;
    let size = 0;
    for (let k = 0; k < U; k++) {
      sum += product(k);
      size += Math.abs(product(k));
    }
    details.replaceChildren(
      termsTable(U, "j", [{ name: `W[${i},j]`, at: (k) => W(i, k) }, { name: "dy[j]", at: (k) => dy[k] }], product),
      element("p", "sum", `dx[${i}] = Σ_j W[${i},j] · dy[j] = ${fmt(sum)}`),
      element("p", "sum", agreement(sum, layer.dx[i], size)),
    );
  }
  show(0);
  return part;
}

export function showDenseFormula(box, answer, title, j) {
  const layer = denseLayer(answer);
  const neuron = Number.isFinite(j) ? Math.min(Math.max(0, j), layer.U - 1) : 0;
  box.replaceChildren(element("h2", "", `${title}, neuron ${neuron}`), forwardPart(layer, neuron), backwardPart(layer, neuron));
}
