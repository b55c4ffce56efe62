// draw.js: the Draw tab. Draw a digit (or drop a picture); as you draw, the page
// asks the server what the network sees: the top classes, the occlusion, saliency
// and Grad-CAM maps, and below the feature maps of every layer and the filters.

import { postImage, withQuery } from "./api.js";
import { sendable } from "./files.js";
import { colourBar, fmt, mapCanvas, photoCanvas, showFilters } from "./maps.js";
import { reportError } from "./message.js";
import { fillRunSelect, findRun, onRunsChanged } from "./runs.js";

const LINE_WIDTH = 20; // canvas pixels of 280: about 2 pixels at MNIST's 28
const PREDICT_EVERY_MS = 150; // while the pen moves: a new answer about 7 times a second

const state = {
  canvas: null,
  pen: null, // the 2-D context
  drawing: false,
  last: null, // the previous point of the stroke
  inked: false, // anything drawn since the last Clear?
  upload: null, // a dropped or opened file (files.js), sent until the pen draws on it
  changed: false, // drawn since the last request
  timer: null,
  busy: false, // a request is on its way: do not start a second one...
  again: null, // ...but remember to send again when it is back ({features})
  cleared: 0, // counts Clear presses: an answer for a cleared picture is dropped
  version: 0, // counts changes of the picture (strokes, files, Clear)
};

// The picture's version: it grows with every change (the Inside-one-step tab
// compares it to see whether its image is still the drawing).
export function pictureVersion() {
  return state.version;
}

// ---------------------------------------------------------------- the image

function blank() {
  state.pen.fillStyle = "black";
  state.pen.fillRect(0, 0, state.canvas.width, state.canvas.height);
}

function canvasBlob() {
  return new Promise((resolve) => state.canvas.toBlob(resolve, "image/png"));
}

// The picture the Draw tab shows now, as PNG or JPEG bytes, or null if empty.
// The Inside-one-step tab uses it too.
export async function currentImage() {
  if (state.upload) return state.upload;
  if (!state.inked) return null;
  return canvasBlob();
}

// Where the pointer is, in canvas pixels (the canvas may be shown larger or smaller).
function canvasPoint(event) {
  const box = state.canvas.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left) * state.canvas.width) / box.width,
    y: ((event.clientY - box.top) * state.canvas.height) / box.height,
  };
}

function strokeTo(point) {
  const pen = state.pen;
  pen.beginPath();
  pen.moveTo(state.last.x, state.last.y);
  pen.lineTo(point.x, point.y);
  pen.stroke();
  state.last = point;
}

function onPointerDown(event) {
  if (event.isPrimary === false) return; // a second finger does not draw
  event.preventDefault();
  state.canvas.setPointerCapture(event.pointerId);
  state.version += 1; // a file still being read is not shown over the stroke
  state.drawing = true;
  state.inked = true;
  state.upload = null; // drawing over a picture: from now on the canvas is the image
  state.last = canvasPoint(event);
  strokeTo(state.last); // a dot for a tap
  state.changed = true;
  clearInterval(state.timer);
  state.timer = setInterval(() => {
    if (state.changed) predict({ features: false });
  }, PREDICT_EVERY_MS);
}

function onPointerMove(event) {
  if (!state.drawing || event.isPrimary === false) return;
  // a fast finger moves several times per frame: take every point for a smooth line
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const each of events.length ? events : [event]) strokeTo(canvasPoint(each));
  state.changed = true;
}

function onPointerUp() {
  if (!state.drawing) return;
  state.drawing = false;
  state.version += 1;
  clearInterval(state.timer);
  predict({ features: true });
}

function clearAll() {
  blank();
  state.inked = false;
  state.upload = null;
  state.changed = false;
  state.cleared += 1;
  state.version += 1;
  showNothing();
}

// Show a dropped or opened picture on the canvas (scaled to fit, black around it)
// and send it (sendable). A stroke, a Clear or another file meanwhile wins.
async function useFile(file) {
  if (!file) return;
  const version = ++state.version;
  state.upload = file;
  state.inked = true;
  blank();
  let picture = null;
  try {
    picture = await createImageBitmap(file);
  } catch {
    // the browser cannot read it; the server will say what is wrong with it
  }
  if (version !== state.version) return;
  if (picture) {
    const scale = Math.min(state.canvas.width / picture.width, state.canvas.height / picture.height);
    const w = picture.width * scale;
    const h = picture.height * scale;
    state.pen.drawImage(picture, (state.canvas.width - w) / 2, (state.canvas.height - h) / 2, w, h);
    const upload = await sendable(file, picture);
    if (version !== state.version) return;
    state.upload = upload;
  }
  predict({ features: true });
}

// ---------------------------------------------------------------- the requests

async function predict({ features }) {
  if (state.busy) {
    state.again = { features: features || (state.again?.features ?? false) };
    return;
  }
  const run = document.getElementById("run-select").value;
  if (!run) return;
  state.busy = true;
  state.changed = false;
  const cleared = state.cleared;
  try {
    const image = await currentImage();
    if (image) {
      const answer = await postImage(withQuery("/api/predict", { run }), image);
      if (cleared === state.cleared) showPrediction(answer, run);
      if (features) {
        const layers = await postImage(withQuery("/api/features", { run }), image);
        if (cleared === state.cleared) showFeatures(layers);
      }
    }
  } catch (error) {
    reportError("Draw", error);
  } finally {
    state.busy = false;
    const next = state.again;
    state.again = null;
    if (next) predict(next);
  }
}

// ---------------------------------------------------------------- what we show

function showNothing() {
  document.getElementById("top-classes").replaceChildren();
  document.getElementById("predict-note").textContent = "";
  document.getElementById("draw-maps").replaceChildren();
  document.getElementById("features").replaceChildren();
  document.getElementById("filters").replaceChildren();
}

// One <li class="top-class" data-class="7" data-probability="0.98"> per class, best first.
function showTopClasses(top) {
  const list = document.getElementById("top-classes");
  list.replaceChildren();
  for (const { class: name, probability } of top) {
    const item = document.createElement("li");
    item.className = "top-class";
    item.dataset.class = name;
    item.dataset.probability = String(probability);
    const label = document.createElement("span");
    label.className = "class-name";
    label.textContent = name;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = `${(100 * probability).toFixed(1)}%`;
    bar.append(fill);
    const percent = document.createElement("span");
    percent.className = "percent";
    percent.textContent = `${(100 * probability).toFixed(1)}%`;
    item.append(label, bar, percent);
    list.append(item);
  }
}

// A figure: a title, the map, its colour bar and one sentence saying how to read it.
// A colour picture (scale "rgb": M.rgb holds its pixels) has no colour bar.
function mapFigure(title, M, scale, explanation, size = 140) {
  const figure = document.createElement("figure");
  figure.className = "map-figure";
  const heading = document.createElement("figcaption");
  heading.className = "map-title";
  heading.textContent = title;
  const text = document.createElement("figcaption");
  text.className = "map-text";
  text.textContent = explanation;
  if (scale === "rgb") figure.append(heading, photoCanvas(M, { size }), text);
  else figure.append(heading, mapCanvas(M, { scale, size }), colourBar(M, scale), text);
  return figure;
}

function showPrediction(answer, run) {
  showTopClasses(answer.top ?? []);
  const best = answer.top?.[0]?.class ?? "?";
  const times = answer.time_ms ?? {};
  const notes = [`server: predict ${fmt(times.predict)} ms, maps ${fmt(times.maps)} ms`];
  if (answer.inverted) notes.push("the picture was inverted (dark ink on light paper)");
  const shape = findRun(run)?.input_shape;
  if (shape && shape[0] === 3) notes.push("colour model: a photo of the ten CIFAR-10 classes works best");
  document.getElementById("predict-note").textContent = notes.join(" · ");

  const maps = answer.maps ?? {};
  const figures = [];
  if (answer.input) {
    const colour = Array.isArray(answer.input.rgb);
    figures.push(mapFigure("What the model saw", answer.input, colour ? "rgb" : "grey",
      `your image after fitting it to the model's input size${colour ? ", in colour" : ""}`));
  }
  if (maps.occlusion) {
    figures.push(mapFigure("Occlusion", maps.occlusion, "diverging",
      `how much p(${best}) drops when a patch here is hidden: red hurts, blue helps`));
  }
  if (maps.saliency) {
    figures.push(mapFigure("Saliency", maps.saliency, "heat",
      `|d score(${best}) / d pixel|: the pixels whose change moves the score most`));
  }
  if (maps.grad_cam) {
    figures.push(mapFigure("Grad-CAM", maps.grad_cam, "heat",
      `where the last convolution found evidence for ${best}`));
  }
  document.getElementById("draw-maps").replaceChildren(...figures);
}

function showFeatures(answer) {
  const rows = (answer.layers ?? []).map((layer) => {
    const row = document.createElement("div");
    row.className = "feature-row";
    const title = document.createElement("h3");
    const more = layer.truncated ? ` (first ${layer.maps.length} channels)` : "";
    title.textContent = `${layer.index}. ${layer.name} · ${layer.type} · ${JSON.stringify(layer.shape)}${more}`;
    const maps = document.createElement("div");
    maps.className = "map-grid";
    for (const M of layer.maps) maps.append(mapCanvas(M, { scale: "auto", size: 56 }));
    row.append(title, maps);
    return row;
  });
  document.getElementById("features").replaceChildren(...rows);
  showFilters(document.getElementById("filters"), answer.filters);
}

// ---------------------------------------------------------------- set-up

export function initDraw() {
  state.canvas = document.getElementById("draw-canvas");
  state.pen = state.canvas.getContext("2d");
  state.pen.lineWidth = LINE_WIDTH;
  state.pen.lineCap = "round";
  state.pen.lineJoin = "round";
  state.pen.strokeStyle = "white";
  blank();

  state.canvas.addEventListener("pointerdown", onPointerDown);
  state.canvas.addEventListener("pointermove", onPointerMove);
  state.canvas.addEventListener("pointerup", onPointerUp);
  state.canvas.addEventListener("pointercancel", onPointerUp);
  document.getElementById("clear").addEventListener("click", clearAll);

  const file = document.getElementById("draw-file");
  file.addEventListener("change", () => {
    useFile(file.files[0]);
    file.value = ""; // so that opening the same file again is a change too
  });
  const pad = state.canvas.parentElement;
  pad.addEventListener("dragover", (event) => {
    event.preventDefault();
    pad.classList.add("dropping");
  });
  pad.addEventListener("dragleave", () => pad.classList.remove("dropping"));
  pad.addEventListener("drop", (event) => {
    event.preventDefault();
    pad.classList.remove("dropping");
    useFile(event.dataTransfer.files[0]);
  });

  const select = document.getElementById("run-select");
  select.addEventListener("change", () => predict({ features: true }));
  onRunsChanged((runs) => fillRunSelect(select, runs));
}
