// step.js: the "Inside one step" tab. One image goes forward through the network,
// the loss of one class is measured and its gradient flows back (POST /api/step).
// The overview shows every layer as a column of small maps, one per channel
// (CNN Explainer's overview); the forward activations, or with the toggle the
// gradients dL/d(output) of the backward pass. Clicking a channel of a convolution
// (or a neuron of a Dense layer) opens its formula view (POST /api/step/layer).

import { postImage, withQuery } from "./api.js";
import { showConvFormula } from "./conv.js";
import { showDenseFormula } from "./dense.js";
import { currentImage, pictureVersion } from "./draw.js";
import { sendableFile } from "./files.js";
import { fmt, mapCanvas } from "./maps.js";
import { element } from "./mapview.js";
import { reportError, showMessage } from "./message.js";
import { fillRunSelect, findRun, onRunsChanged } from "./runs.js";

const state = {
  image: null, // the Blob the next step sends
  fromDrawing: true, // follow the Draw tab's picture until a file is opened here
  imageUrl: null, // for the thumbnail in the overview
  answer: null, // the last /api/step answer shown
  shown: null, // what it was asked for: {run, label, image, imageUrl}
  layers: new Map(), // layer index -> its /api/step/layer answer, for that step
  version: -1, // the Draw tab's picture version that state.image is
  asked: 0, // counts the steps asked for: only the answer to the latest is shown
  clicked: null, // the latest click on the overview: an older one's answer is dropped
};

const isConv = (type) => /conv2d/i.test(type);
const isDense = (type) => /dense|linear/i.test(type);

function request() {
  const run = document.getElementById("step-run-select").value;
  const label = document.getElementById("step-label").value;
  return { run, label };
}

// The class picker: "the predicted class" or any class of the run.
function fillLabels() {
  const select = document.getElementById("step-label");
  const run = findRun(document.getElementById("step-run-select").value);
  const names = run?.class_names ?? [];
  const previous = select.value;
  select.replaceChildren(new Option("the predicted class", ""));
  names.forEach((name, k) => select.append(new Option(`${k}: ${name}`, String(k))));
  if (Number(previous) < names.length) select.value = previous;
}

// (The thumbnail's URL is let go when another step is shown: see runStep.)
function setImage(blob, fromDrawing) {
  state.image = blob;
  state.fromDrawing = fromDrawing;
  state.imageUrl = blob ? URL.createObjectURL(blob) : null;
}

async function takeDrawing() {
  state.version = pictureVersion();
  const drawing = await currentImage();
  if (!drawing) {
    showMessage("Inside one step: draw something in the Draw tab first, or open an image here.");
    return false;
  }
  setImage(drawing, true);
  return true;
}

async function runStep() {
  const { run, label } = request();
  if (!run) {
    showMessage("Inside one step: there is no trained run yet (train one in the Train tab).");
    return;
  }
  if (!state.image && !(await takeDrawing())) return;
  // Answers may come back out of order (another run picked, another image opened
  // while this one is on its way): only the latest request's answer is shown, so
  // that an older one never rebuilds the overview under the user's click.
  const asked = ++state.asked;
  const step = { run, label, image: state.image, imageUrl: state.imageUrl };
  try {
    const answer = await postImage(withQuery("/api/step", { run, label }), step.image);
    if (asked !== state.asked) return;
    const old = state.shown?.imageUrl;
    if (old && old !== step.imageUrl) URL.revokeObjectURL(old);
    state.answer = answer;
    state.shown = step;
    state.layers.clear();
    document.getElementById("step-detail").replaceChildren();
    showOverview();
  } catch (error) {
    if (asked === state.asked) reportError("Inside one step", error);
  }
}

// ---------------------------------------------------------------- the overview

function showSummary(answer, layers) {
  const parts = [];
  const names = findRun(state.shown.run)?.class_names ?? [];
  if (answer.label !== undefined && answer.label !== null) {
    const name = names[answer.label] ?? answer.label;
    parts.push(`the loss of class ${name} (as if the image were labelled ${name})`);
  }
  if (typeof answer.loss === "number") parts.push(`loss ${fmt(answer.loss)}`);
  parts.push(`${layers.length} layers`);
  const gradients = document.getElementById("step-gradients").checked;
  parts.push(gradients
    ? "showing dL/d(output) of each layer: blue lowers the loss when it grows, red raises it"
    : "showing each layer's output; click a channel of a convolution or a Dense layer's strip");
  document.getElementById("step-summary").textContent = parts.join(" · ");
}

function inputColumn() {
  const column = element("div", "layer-column");
  column.append(element("h3", "", "input"));
  if (state.shown.imageUrl) {
    const picture = document.createElement("img");
    picture.src = state.shown.imageUrl;
    picture.alt = "the image of this step";
    picture.className = "thumbnail";
    column.append(picture);
  }
  return column;
}

// A flat layer (1 x n) stood upright, one neuron a row, as the overview's columns go;
// a Dense layer's neuron opens its formula view when clicked.
function neuronColumn(layer, M, scale) {
  const n = M.shape[1];
  const upright = { ...M, shape: [n, 1] };
  const cell = Math.max(2, Math.min(20, Math.floor(400 / n)));
  const canvas = mapCanvas(upright, { scale, cell });
  canvas.style.width = "28px";
  if (isDense(layer.type)) {
    canvas.classList.add("clickable");
    canvas.title = "click a neuron to see its numbers";
    canvas.addEventListener("click", (event) => {
      const box = canvas.getBoundingClientRect();
      openLayer(layer, Math.floor(((event.clientY - box.top) / box.height) * n));
    });
  }
  return canvas;
}

function layerColumn(layer, gradients) {
  const column = element("div", "layer-column");
  const shape = layer.output_shape ? ` ${JSON.stringify(layer.output_shape)}` : "";
  const more = layer.truncated ? ", first channels" : "";
  column.append(element("h3", "", `${layer.index}. ${layer.type}`), element("p", "note", `${layer.name}${shape}${more}`));
  const maps = (gradients ? layer.gradients : layer.activations) ?? [];
  const grid = element("div", "channel-grid");
  // many channels: two or three side by side so that the column stays short
  grid.style.gridTemplateColumns = `repeat(${Math.ceil(maps.length / 12) || 1}, auto)`;
  const scale = gradients ? "diverging" : "auto";
  maps.forEach((M, channel) => {
    if (M.shape[0] === 1) {
      grid.append(neuronColumn(layer, M, scale));
      return;
    }
    const canvas = mapCanvas(M, { scale, size: 44 });
    if (isConv(layer.type)) {
      canvas.classList.add("clickable");
      canvas.title = `channel ${channel}: click to see its numbers`;
      canvas.addEventListener("click", () => openLayer(layer, channel));
    }
    grid.append(canvas);
  });
  column.append(grid);
  return column;
}

function showOverview() {
  const answer = state.answer;
  if (!answer) return;
  const layers = Array.isArray(answer) ? answer : answer.layers ?? [];
  const gradients = document.getElementById("step-gradients").checked;
  showSummary(answer, layers);
  const columns = layers.map((layer) => layerColumn(layer, gradients));
  document.getElementById("step-overview").replaceChildren(inputColumn(), ...columns);
}

// ---------------------------------------------------------------- the formula view

// The numbers of the layer for the step shown: its run, its image and the class of
// its loss, whatever the pickers say now (a new step may be on its way). A click
// after another one, or a new step, makes this answer stale: it is then dropped.
async function openLayer(layer, index) {
  const detail = document.getElementById("step-detail");
  const shown = state.shown; // replaced, with the overview, by a newer step
  const clicked = (state.clicked = {});
  try {
    if (!state.layers.has(layer.index)) {
      const label = state.answer.label; // the class the overview's gradients are of
      const path = withQuery("/api/step/layer", { run: shown.run, layer: layer.index, label });
      const answer = await postImage(path, shown.image);
      if (shown !== state.shown) return;
      state.layers.set(layer.index, answer);
    }
    if (clicked !== state.clicked || shown !== state.shown) return;
    const answer = state.layers.get(layer.index);
    const title = `Layer ${layer.index}: ${layer.name} (${layer.type})`;
    if (isConv(answer.type ?? layer.type)) showConvFormula(detail, answer, title, index);
    else showDenseFormula(detail, answer, title, index);
    detail.scrollIntoView({ behavior: "smooth", block: "start" });
  } catch (error) {
    if (shown === state.shown) reportError(`Layer ${layer.index}`, error);
  }
}

// ---------------------------------------------------------------- set-up

export function initStep() {
  const runSelect = document.getElementById("step-run-select");
  onRunsChanged((runs) => {
    fillRunSelect(runSelect, runs);
    fillLabels();
  });
  runSelect.addEventListener("change", () => {
    fillLabels();
    if (state.image) runStep();
  });
  document.getElementById("step-label").addEventListener("change", () => {
    if (state.image) runStep();
  });
  document.getElementById("step-use-drawing").addEventListener("click", async () => {
    if (await takeDrawing()) runStep();
  });
  const file = document.getElementById("step-file");
  file.addEventListener("change", async () => {
    const opened = file.files[0];
    file.value = ""; // so that opening the same file again is a change too
    if (!opened) return;
    setImage(await sendableFile(opened), false);
    runStep();
  });
  document.getElementById("step-run").addEventListener("click", async () => {
    if (state.fromDrawing && !(await takeDrawing())) return;
    runStep();
  });
  document.getElementById("step-gradients").addEventListener("change", showOverview);
}

// When the tab opens: follow the Draw tab's picture if it changed since the last step.
export async function stepShown() {
  if (!state.fromDrawing || state.version === pictureVersion()) return;
  state.version = pictureVersion();
  const drawing = await currentImage();
  if (drawing) {
    setImage(drawing, true);
    runStep();
  }
}
