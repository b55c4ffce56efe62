// main.js: starts the page. Four tabs share one run list (runs.js) and one
// message line (message.js); each tab lives in its own module.
//
//   draw.js     Draw: the canvas, the top classes, the maps, the feature maps
//   train.js    Train: the form, Start/Stop, the live curves and filters
//   compare.js  Compare: several runs' curves and final metrics
//   step.js     Inside one step: the overview and the formula views (conv.js, dense.js)

import { initCompare } from "./compare.js";
import { initDraw } from "./draw.js";
import { initMessage, reportError } from "./message.js";
import { refreshRuns } from "./runs.js";
import { initStep, stepShown } from "./step.js";
import { initTrain } from "./train.js";

const VIEWS = ["draw", "train", "compare", "step"];

function showView(name) {
  if (!VIEWS.includes(name)) name = "draw";
  for (const view of VIEWS) {
    document.getElementById(`view-${view}`).hidden = view !== name;
    document.getElementById(`tab-${view}`).setAttribute("aria-selected", String(view === name));
  }
  // the address remembers the tab, so that a reload (or a link) opens it again
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (name === "step") stepShown();
}

function initTabs() {
  for (const view of VIEWS) {
    document.getElementById(`tab-${view}`).addEventListener("click", () => showView(view));
  }
  showView(location.hash.slice(1));
}

async function start() {
  initMessage();
  initDraw();
  initCompare();
  initStep();
  initTabs();
  try {
    await refreshRuns();
  } catch (error) {
    reportError("Runs", error);
  }
  await initTrain(); // reports its own errors
}

start();
