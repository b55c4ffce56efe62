// train.js: the Train tab. A form from GET /api/zoo, Start (POST /api/train) and
// Stop (POST /api/train/stop); the server trains in a worker process and tells us
// what happens through server-sent events (GET /api/train/events):
//   progress {epoch, batch, batches, loss, accuracy}  every few batches
//   filters  {layer, shape, maps}                      the first convolution's kernels
//   epoch    {loss, accuracy, val_loss, ...}            one row of the run's history
//   done     {state, message}                          finished, stopped or failed

import { getJson, postJson } from "./api.js";
import { fmt, showFilters } from "./maps.js";
import { showMessage, reportError } from "./message.js";
import { COLOURS, LineChart } from "./plot.js";
import { refreshRuns } from "./runs.js";

// What we have heard about the current job.
const job = {
  run: null,
  state: "idle",
  progress: new Map(), // "epoch:batch" -> progress event (a reconnect repeats some)
  epochs: [], // history rows, one per finished epoch
  connection: "connecting",
};
let lossChart;
let accuracyChart;

// ---------------------------------------------------------------- the form

const FIELDS = {
  // JSON key: [element id, kind]
  model: ["train-model", "text"],
  dataset: ["train-dataset", "text"],
  epochs: ["train-epochs", "int"],
  batch_size: ["train-batch-size", "int"],
  lr: ["train-lr", "float"],
  optimizer: ["train-optimizer", "text"],
  limit: ["train-limit", "int"],
  augment: ["train-augment", "bool"],
  seed: ["train-seed", "int"],
  name: ["train-name", "text"],
};

function fillSelect(id, values) {
  const select = document.getElementById(id);
  select.replaceChildren(...values.map((value) => new Option(value, value)));
}

function applyDefaults(defaults) {
  for (const [key, value] of Object.entries(defaults ?? {})) {
    if (!(key in FIELDS) || value === null || value === undefined) continue;
    const [id, kind] = FIELDS[key];
    const element = document.getElementById(id);
    if (kind === "bool") element.checked = Boolean(value);
    else element.value = String(value);
  }
}

// A model built for 1 x 28 x 28 digits cannot eat 3 x 32 x 32 photos: offer only the
// data sets whose images fit the chosen model (when the zoo says what each needs).
function matchDatasets(zoo) {
  const inputs = zoo.model_inputs?.[document.getElementById("train-model").value];
  const select = document.getElementById("train-dataset");
  if (!inputs || !zoo.dataset_inputs) return;
  const fits = (name) => (zoo.dataset_inputs[name] ?? inputs).join("x") === inputs.join("x");
  for (const option of select.options) option.disabled = !fits(option.value);
  if (select.selectedOptions[0]?.disabled) {
    const first = [...select.options].find((option) => !option.disabled);
    if (first) select.value = first.value;
  }
}

async function loadZoo() {
  const zoo = await getJson("/api/zoo");
  fillSelect("train-model", zoo.models ?? []);
  fillSelect("train-dataset", zoo.datasets ?? []);
  fillSelect("train-optimizer", zoo.optimizers ?? []);
  applyDefaults(zoo.defaults);
  matchDatasets(zoo);
  document.getElementById("train-model").addEventListener("change", () => matchDatasets(zoo));
  // each optimiser has its own good learning rate (SGD's 0.05 makes Adam diverge):
  // picking one puts its default in the field, which the user may then change
  const optimizer = document.getElementById("train-optimizer");
  optimizer.addEventListener("change", () => {
    const lr = zoo.default_lr?.[optimizer.value];
    if (typeof lr === "number") document.getElementById("train-lr").value = String(lr);
  });
}

// "lenet5-mnist-0412": a name that tells what it is and when it started.
function suggestName(model, dataset) {
  const now = new Date();
  const time = [now.getHours(), now.getMinutes(), now.getSeconds()]
    .map((n) => String(n).padStart(2, "0"))
    .join("");
  return `${model}-${dataset}-${time}`.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 64);
}

// The form as the JSON POST /api/train expects; an empty limit means "all".
function readForm() {
  const settings = {};
  for (const [key, [id, kind]] of Object.entries(FIELDS)) {
    const element = document.getElementById(id);
    const text = element.value.trim();
    if (kind === "bool") settings[key] = element.checked;
    else if (text === "") settings[key] = null;
    else if (kind === "int") settings[key] = Number.parseInt(text, 10);
    else if (kind === "float") settings[key] = Number.parseFloat(text);
    else settings[key] = text;
  }
  if (!settings.name) {
    settings.name = suggestName(settings.model, settings.dataset);
    document.getElementById("train-name").value = settings.name;
  }
  return settings;
}

async function start(event) {
  event.preventDefault();
  const form = document.getElementById("train-form");
  if (!form.reportValidity()) return;
  const button = document.getElementById("train-start");
  button.disabled = true; // a double click starts one job, not a job and a 409
  try {
    const settings = readForm();
    const answer = await postJson("/api/train", settings);
    const run = answer.run ?? settings.name;
    // the stream's "state" event may have been quicker, and then said all (the job
    // may even have ended already): only news for this page is applied here
    if (run !== job.run) {
      resetJob(run);
      job.state = "running";
    }
  } catch (error) {
    reportError("Train", error);
  } finally {
    showState(); // enables Start again unless a job runs
  }
}

async function stop() {
  try {
    const answer = await postJson("/api/train/stop");
    // the stream's "done" may have come first: a job that ended stays ended
    if (job.state === "running") job.state = answer.state ?? "stopping";
    showState();
  } catch (error) {
    reportError("Stop", error);
  }
}

// ---------------------------------------------------------------- the job

function resetJob(run) {
  job.run = run;
  job.progress = new Map();
  job.epochs = [];
  document.getElementById("train-filters").replaceChildren();
  redrawCurves();
}

function addProgress(event) {
  job.progress.set(`${event.epoch}:${event.batch}`, event);
}

// Epochs counted as 1, 2, 3... by the CLI; if the server counts from 0, so do we.
function epochBase() {
  const firsts = [...job.progress.values()].map((p) => p.epoch);
  return Math.min(1, ...firsts);
}

// Progress along the x axis in epochs: epoch 2, batch 30 of 120 -> 1.25.
function redrawCurves() {
  const base = epochBase();
  const events = [...job.progress.values()].map((p) => ({
    x: p.epoch - base + p.batch / p.batches,
    ...p,
  }));
  events.sort((a, b) => a.x - b.x);
  const rows = job.epochs.map((row, k) => ({ x: (row.epoch ?? k + base) - base + 1, ...row }));
  const series = (key, label, colour, list, dots) => ({
    label,
    colour,
    dots,
    points: list.filter((r) => typeof r[key] === "number").map((r) => [r.x, r[key]]),
  });
  lossChart.setSeries([
    series("loss", "training", COLOURS[0], events, false),
    series("val_loss", "validation", COLOURS[1], rows, true),
  ]);
  accuracyChart.setSeries([
    series("accuracy", "training", COLOURS[0], events, false),
    series("val_accuracy", "validation", COLOURS[1], rows, true),
  ]);
}

function showState(last = null) {
  const parts = [`${job.state}`];
  if (job.run) parts.push(`run ${job.run}`);
  if (last) {
    parts.push(`epoch ${last.epoch}, batch ${last.batch}/${last.batches}`);
    const accuracy = typeof last.accuracy === "number" ? `${fmt(100 * last.accuracy)}%` : "–";
    parts.push(`loss ${fmt(last.loss)}, accuracy ${accuracy}`);
  }
  if (job.connection !== "live") parts.push(`(live updates: ${job.connection})`);
  const line = document.getElementById("train-state");
  line.textContent = parts.join(" · ");
  line.dataset.state = job.state;
  const busy = job.state === "running" || job.state === "stopping";
  document.getElementById("train-start").disabled = busy;
  document.getElementById("train-stop").disabled = !busy;
}

// The whole state at once: GET /api/train/status, or a `status` event.
function applyStatus(status) {
  if (status.run && status.run !== job.run) resetJob(status.run);
  job.state = status.state ?? job.state;
  for (const p of status.progress ?? []) addProgress(p);
  if (Array.isArray(status.epochs) && status.epochs.length >= job.epochs.length) {
    job.epochs = status.epochs;
  }
  redrawCurves();
  const progress = status.progress ?? [];
  showState(progress[progress.length - 1] ?? null);
}

// ---------------------------------------------------------------- the events

function listen(source, type, handle) {
  source.addEventListener(type, (event) => {
    try {
      handle(JSON.parse(event.data));
    } catch (error) {
      reportError(`Training event "${type}"`, error);
    }
  });
}

function connect() {
  const source = new EventSource("/api/train/events");
  source.onopen = () => {
    job.connection = "live";
    showState();
  };
  source.onerror = () => {
    // the browser reconnects by itself; say so instead of staying silent
    job.connection = "lost, reconnecting";
    showState();
  };
  listen(source, "status", applyStatus);
  listen(source, "state", applyStatus);
  listen(source, "progress", (p) => {
    if (job.state !== "stopping") job.state = "running";
    addProgress(p);
    redrawCurves();
    showState(p);
  });
  listen(source, "epoch", (row) => {
    job.epochs.push(row);
    redrawCurves();
  });
  listen(source, "filters", (filters) => {
    showFilters(document.getElementById("train-filters"), filters);
  });
  listen(source, "done", async (end) => {
    // a new connection may open with the end of an old job: only news is announced
    const wasActive = job.state === "running" || job.state === "stopping";
    job.state = end.state ?? "finished";
    showState();
    if (wasActive) {
      document.getElementById("train-name").value = ""; // that name is taken now
      if (job.state === "failed") showMessage(`Training failed: ${end.message ?? ""}`);
      else showMessage(`Training ${end.message || `${job.state}: run ${job.run} is ready`}`, "info");
    }
    try {
      await refreshRuns();
    } catch (error) {
      reportError("Runs", error);
    }
  });
}

// ---------------------------------------------------------------- set-up

export async function initTrain() {
  lossChart = new LineChart(document.getElementById("loss-curve"), {
    xLabel: "epoch",
    yLabel: "loss",
    xMin: 0,
    yMin: 0,
  });
  accuracyChart = new LineChart(document.getElementById("accuracy-curve"), {
    xLabel: "epoch",
    yLabel: "accuracy",
    xMin: 0,
    yMin: 0,
    yMax: 1,
  });
  document.getElementById("train-form").addEventListener("submit", start);
  document.getElementById("train-stop").addEventListener("click", stop);
  // the name of a finished run is taken: clear it so that the next one is new
  const name = document.getElementById("train-name");
  document.getElementById("train-model").addEventListener("change", () => (name.value = ""));
  document.getElementById("train-dataset").addEventListener("change", () => (name.value = ""));

  try {
    await loadZoo();
  } catch (error) {
    reportError("Zoo", error);
  }
  try {
    applyStatus(await getJson("/api/train/status"));
  } catch (error) {
    reportError("Training status", error);
  }
  connect();
}
