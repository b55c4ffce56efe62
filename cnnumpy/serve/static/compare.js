// compare.js: the Compare tab. Tick runs; their curves per epoch are overlaid
// (GET /api/runs/NAME/history) and their final numbers are set side by side.

import { getJson } from "./api.js";
import { fmt } from "./maps.js";
import { reportError } from "./message.js";
import { COLOURS, LineChart } from "./plot.js";
import { onRunsChanged } from "./runs.js";

// run name -> the promise of its /history answer (a run changes only when trained
// again: the list is emptied when the runs are listed again)
const histories = new Map();
let lossChart;
let accuracyChart;
let known = null; // the run names of the last list (null before the first)
let updates = 0; // counts the updates: only the latest one draws

function checkedNames() {
  const boxes = document.querySelectorAll("#compare-runs input[type=checkbox]:checked");
  return [...boxes].map((box) => box.value);
}

// One request per run, however many updates ask for it at once; a failed one is
// forgotten, so that the next update asks again.
function history(name) {
  if (!histories.has(name)) {
    const asked = getJson(`/api/runs/${encodeURIComponent(name)}/history`);
    asked.catch(() => {
      if (histories.get(name) === asked) histories.delete(name);
    });
    histories.set(name, asked);
  }
  return histories.get(name);
}

// Epoch k of the history is drawn at x = k + 1 (after the first epoch, x = 1).
function curve(values) {
  return (values ?? [])
    .map((y, k) => [k + 1, y])
    .filter(([, y]) => typeof y === "number");
}

function showCurves(answers) {
  const loss = [];
  const accuracy = [];
  answers.forEach((answer, k) => {
    const colour = COLOURS[k % COLOURS.length];
    const h = answer.history ?? {};
    loss.push({ label: answer.name, colour, points: curve(h.loss) });
    loss.push({ label: "", colour, dashed: true, points: curve(h.val_loss) });
    accuracy.push({ label: answer.name, colour, points: curve(h.accuracy) });
    accuracy.push({ label: "", colour, dashed: true, points: curve(h.val_accuracy) });
  });
  lossChart.setSeries(loss);
  accuracyChart.setSeries(accuracy);
}

const percent = (v) => (typeof v === "number" ? `${(100 * v).toFixed(2)}%` : "–");
const number = (v) => (typeof v === "number" ? fmt(v) : "–");
const last = (values) => (values && values.length ? values[values.length - 1] : null);

// One row per run: what it is, where its training ended and how it did on the test set.
const COLUMNS = [
  ["run", (a) => a.name],
  ["model", (a, run) => run?.model ?? "–"],
  ["data set", (a, run) => run?.dataset ?? "–"],
  ["epochs", (a) => String(a.history?.loss?.length ?? 0)],
  ["train loss", (a) => number(last(a.history?.loss))],
  ["train accuracy", (a) => percent(last(a.history?.accuracy))],
  ["val loss", (a) => number(last(a.history?.val_loss))],
  ["val accuracy", (a) => percent(last(a.history?.val_accuracy))],
  ["test loss", (a) => number(a.metrics?.test_loss)],
  ["test accuracy", (a) => percent(a.metrics?.test_accuracy)],
];

function showTable(answers, runs) {
  const table = document.getElementById("compare-table");
  table.replaceChildren();
  if (answers.length === 0) return;
  const head = table.createTHead().insertRow();
  for (const [title] of COLUMNS) {
    const cell = document.createElement("th");
    cell.textContent = title;
    head.append(cell);
  }
  const body = table.createTBody();
  answers.forEach((answer, k) => {
    const run = runs.find((r) => r.name === answer.name);
    const row = body.insertRow();
    row.style.borderLeft = `8px solid ${COLOURS[k % COLOURS.length]}`;
    for (const [, value] of COLUMNS) row.insertCell().textContent = value(answer, run);
  });
}

// Ticks come faster than the answers: an update whose answers arrive after a later
// update's must not draw the older choice of runs over the newer one.
async function update(runs) {
  const asked = ++updates;
  try {
    const answers = await Promise.all(checkedNames().map(history));
    if (asked !== updates) return;
    showCurves(answers);
    showTable(answers, runs);
  } catch (error) {
    if (asked === updates) reportError("Compare", error);
  }
}

function showRunList(runs) {
  histories.clear(); // a resumed run has a longer history now
  const box = document.getElementById("compare-runs");
  const ticked = new Set(checkedNames());
  // the first time, tick up to three runs so that the tab does not open empty;
  // later, tick the runs that are new (a training just finished)
  if (known === null) runs.slice(0, 3).forEach((run) => ticked.add(run.name));
  else runs.filter((run) => !known.has(run.name)).forEach((run) => ticked.add(run.name));
  known = new Set(runs.map((run) => run.name));
  const legend = box.querySelector("legend");
  box.replaceChildren(legend);
  if (runs.length === 0) box.append("No runs yet: train one in the Train tab.");
  for (const run of runs) {
    const label = document.createElement("label");
    label.className = "check";
    const tick = document.createElement("input");
    tick.type = "checkbox";
    tick.value = run.name;
    tick.checked = ticked.has(run.name);
    tick.addEventListener("change", () => update(runs));
    label.append(tick, ` ${run.name} (${run.model}, ${run.dataset})`);
    box.append(label);
  }
  update(runs);
}

export function initCompare() {
  lossChart = new LineChart(document.getElementById("compare-loss"), {
    xLabel: "epoch",
    yLabel: "loss",
    xMin: 0,
    yMin: 0,
  });
  accuracyChart = new LineChart(document.getElementById("compare-accuracy"), {
    xLabel: "epoch",
    yLabel: "accuracy",
    xMin: 0,
    yMax: 1,
  });
  onRunsChanged(showRunList);
}
