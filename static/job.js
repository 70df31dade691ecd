// Job page: polls /api/jobs/<id>, draws a progress bar per stage, the pictures of a running deconvnet job as
// they are written, then the result sheet (the deconvnet's, or a generic one for the other methods); a tab per
// method submits a new job on the same photo.
import { el } from "./dom.js";
import { retryButton } from "./job-forms.js";
import { drawSheet } from "./job-sheet.js";
import { sheetControls } from "./job-sheet-controls.js";
import { drawTabs, fetchMethods, methodLabel } from "./job-tabs.js";
import { pollJson, setStatus, stageBar } from "./status.js";
import { attachViewer } from "./viewer.js";

const root = document.getElementById("job");
const statusLine = document.getElementById("status");
const stagesBox = document.getElementById("stages");
const sheetBox = document.getElementById("sheet");
const actions = document.getElementById("actions");
const createUrl = root.dataset.create;
const channels = JSON.parse(root.dataset.channels);  // {layer: channel count}
let catalogue = null;  // the answer of /api/methods, once it is in
let lastDocument = null;
let tabsDrawn = false;

const showStatus = (text, kind) => setStatus(statusLine, text, kind);

// "Made from job … " and "Made from this job: …" (the API's parent and children): the way back up from a job
// opened from another, and down to the jobs made from this one.
function drawLineage(doc) {
  const box = document.getElementById("lineage");
  const methods = catalogue ? catalogue.methods : [];
  const parts = [];
  if (doc.parent) {
    parts.push(el("p", {}, ["Made from ", el("a", { href: doc.parent.page, rel: "up", class: "parent-job" },
      ["job ", el("code", { text: doc.parent.id.slice(0, 8) })]), "."]));
  }
  const children = doc.children || [];
  if (children.length) {
    parts.push(el("p", { id: "children-heading", text: "Made from this job:" }));
    parts.push(el("ul", { class: "child-jobs", "aria-labelledby": "children-heading" }, children.map((child) =>
      el("li", {}, [el("a", { href: child.page }, [methodLabel(methods, child.method) + " · job ",
        el("code", { text: child.id.slice(0, 8) })])]))));
  }
  box.replaceChildren(...parts);
  box.hidden = !parts.length;
}

// The queue, then each stage the job reports.
function drawStages(doc) {
  const queued = doc.status === "queued";
  const position = doc.queue_position;
  const bars = [stageBar({ label: "Queue", done: queued ? null : 1, total: 1,
    detail: queued ? (position !== null && position !== undefined ? "position " + (position + 1) : "waiting") : "done" })];
  ((doc.progress && doc.progress.stages) || []).forEach((stage) => {
    const detail = stage.total > 1 ? stage.done + " of " + stage.total : (stage.done >= stage.total ? "done" : "");
    bars.push(stageBar({ label: stage.label, done: stage.done, total: stage.total, detail: detail }));
  });
  stagesBox.replaceChildren(...bars);
}

function describeTimings(doc) {
  const t = doc.timings || {};
  const parts = [];
  if (typeof t.total_seconds === "number") parts.push("computed in " + t.total_seconds.toFixed(1) + " s");
  // The page's "Weights:" line says what the workers' weights mean; a result made with those says only
  // their name here, one made with other weights (before a switch) says in words what they were.
  const manifest = doc.manifest || {};
  const inUse = (document.getElementById("weights-note") || {}).textContent || "";
  if (manifest.weights_description && !inUse.includes(manifest.weights_description)) {
    parts.push("weights: " + manifest.weights_description);
  } else if (manifest.weights) parts.push(manifest.weights + " weights (see above)");
  if (doc.manifest && doc.manifest.device) parts.push(doc.manifest.device);
  return parts.length ? " · " + parts.join(" · ") : "";
}

function showSheet(doc) {
  const methods = catalogue ? catalogue.methods : [];
  const label = methodLabel(methods, doc.method);
  const deconv = methods.find((method) => method.name === "deconv");
  const controls = doc.manifest.layers ? sheetControls(doc, deconv, sheetBox, createUrl) : null;
  drawSheet(sheetBox, doc, { channels: channels, createUrl: createUrl, methodLabel: label, controls: controls });
  delete sheetBox.dataset.partial;
  sheetBox.removeAttribute("aria-busy");
  actions.hidden = false;
}

// A running deconvnet job's sheet so far: the pictures its worker has written (the API lists them in files and
// its manifest so far), redrawn only when more have landed, keeping the figures already drawn (their images stay
// loaded); the finished sheet, drawn anew, replaces it.
let partialFiles = "";
function showPartialSheet(doc) {
  const files = doc.files.map((file) => file.name).join(" ");
  if (!doc.manifest || !doc.manifest.layers || !doc.files.length || files === partialFiles) return;
  partialFiles = files;
  drawSheet(sheetBox, doc, { channels: channels, createUrl: createUrl, methodLabel: "", controls: null, keep: true });
  sheetBox.dataset.partial = "true";
  sheetBox.setAttribute("aria-busy", "true");
}

// A job that failed after writing some pictures removed them: its sheet so far goes too.
function dropPartialSheet() {
  if (!sheetBox.dataset.partial) return;
  sheetBox.replaceChildren();
  sheetBox.hidden = true;
  delete sheetBox.dataset.partial;
  sheetBox.removeAttribute("aria-busy");
}

// Milliseconds until the next poll of a pending job whose document came back unchanged (a long poll that ran
// its course, or one the server had no thread for): often at first and once its last stage (writing) has
// begun, as it ends soon; else a tenth of the time the page has waited (between 0.1 s and 1 s), so that a long
// computation is polled seldom and noticing a job's end costs little.
const pageOpened = performance.now();
function pollDelay(doc) {
  const stages = (doc.progress && doc.progress.stages) || [];
  if (stages.length > 1 && stages.slice(0, -1).every((stage) => stage.done >= stage.total)) return 100;
  return Math.min(1000, Math.max(100, (performance.now() - pageOpened) / 10));
}

function showTabs(doc) {
  if (tabsDrawn || !catalogue || !catalogue.methods.length) return;
  tabsDrawn = true;
  drawTabs(catalogue, doc, Object.keys(channels), createUrl);
}

const FINAL_STATES = ["finished", "failed", "canceled"];

// Shows one state of the job; returns the milliseconds until the next poll, null once the job is over.
function render(doc) {
  lastDocument = doc;
  root.dataset.status = doc.status;
  drawLineage(doc);
  showTabs(doc);
  drawStages(doc);
  if (doc.status === "queued") {
    showStatus("Waiting in the queue" + (doc.message ? ": " + doc.message : "…"), doc.message ? "waiting" : "");
  } else if (doc.status === "started") {
    const stage = doc.progress && doc.progress.stage;
    showStatus("Running" + (stage ? ": " + stage : "…") + (doc.message ? " (" + doc.message + ")" : ""));
    showPartialSheet(doc);
  } else if (doc.status === "finished") {
    showStatus("Finished" + describeTimings(doc), "finished");
    methodsLoaded.then(() => showSheet(doc));  // the sheet's labels and controls come from the methods' list
  } else if (doc.status === "failed") {
    dropPartialSheet();
    showStatus("Failed: " + (doc.message || "unknown error"), "failed");
    stagesBox.append(el("div", {}, [retryButton(doc, createUrl, (message) => showStatus(message, "failed"))]));
  } else {
    dropPartialSheet();
    showStatus("Canceled: " + (doc.message || ""), "failed");
  }
  if (FINAL_STATES.includes(doc.status)) return null;
  return doc.status === "queued" && doc.message ? 2000 : pollDelay(doc);  // a queue held up by a message moves slowly
}

async function loadMethods() {
  catalogue = await fetchMethods(root.dataset.methods);
  if (catalogue && lastDocument) {
    showTabs(lastDocument);
    drawLineage(lastDocument);  // with the methods' labels
  }
}

attachViewer(sheetBox, document.getElementById("viewer"));
const methodsLoaded = loadMethods();
pollJson(root.dataset.api, {
  longPoll: true,  // the page updates as soon as the job changes; pollDelay is the schedule when it does not
  show: render,
  gone: (message) => showStatus("Not found: " + message, "failed"),
  lost: (message, failures) => {
    showStatus("Cannot reach the service (" + message + "); retrying…", "waiting");
    return Math.min(10000, 1000 * failures);
  },
  httpFallback: (status) => "HTTP " + status,
});
