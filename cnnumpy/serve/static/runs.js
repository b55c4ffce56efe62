// runs.js: the list of trained runs (GET /api/runs), shared by every tab.
//
// A tab that shows runs registers with onRunsChanged(); after a training ends,
// refreshRuns() fetches the list again and every tab updates.

import { getJson } from "./api.js";

let runs = [];
const listeners = [];

export function findRun(name) {
  return runs.find((run) => run.name === name) ?? null;
}

export function onRunsChanged(listener) {
  listeners.push(listener);
}

export async function refreshRuns() {
  const body = await getJson("/api/runs");
  runs = body.runs ?? [];
  for (const listener of listeners) listener(runs);
  return runs;
}

// The run a drawing suits best: the first one whose input is 1 x 28 x 28.
function defaultRun(list) {
  const digits = list.find((run) => (run.input_shape ?? []).join("x") === "1x28x28");
  return digits ?? list[0] ?? null;
}

function describeRun(run) {
  const accuracy =
    typeof run.test_accuracy === "number"
      ? `, test accuracy ${(100 * run.test_accuracy).toFixed(1)}%`
      : "";
  return `${run.name}: ${run.model} on ${run.dataset}${accuracy}`;
}

// Fill a <select> with the runs, keeping the current choice when it still exists.
export function fillRunSelect(select, list) {
  const previous = select.value;
  select.replaceChildren();
  if (list.length === 0) {
    select.append(new Option("no runs yet: train one in the Train tab", ""));
    select.disabled = true;
    return;
  }
  select.disabled = false;
  for (const run of list) select.append(new Option(describeRun(run), run.name));
  const keep = list.some((run) => run.name === previous);
  select.value = keep ? previous : defaultRun(list).name;
}
