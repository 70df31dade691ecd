// A scan's page (/scans/<id>): polls /api/scans/<id> for progress, then shows the unit browser
// (scan-units.js) once the chunks are merged.
import { el } from "./dom.js";
import { showUnits } from "./scan-units.js";
import { pollJson, setStatus, stageBar } from "./status.js";

const root = document.getElementById("scan");
const statusLine = document.getElementById("scan-status");
const summary = document.getElementById("scan-summary");
const stagesBox = document.getElementById("scan-stages");
const figures = document.getElementById("scan-figures");
const skippedBox = document.getElementById("scan-skipped");

const FINAL_STATES = ["done", "failed"];

function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const whole = Math.round(seconds);
  if (whole < 60) return whole + " s";
  if (whole < 3600) return Math.floor(whole / 60) + " min " + (whole % 60) + " s";
  return Math.floor(whole / 3600) + " h " + String(Math.floor((whole % 3600) / 60)).padStart(2, "0") + " min";
}

function describeStatus(doc) {
  const progress = doc.progress;
  switch (doc.status) {
    case "planning": return "Reading the images";
    case "pending": return "Queued";
    case "scanning": return "Scanning: " + progress.chunks_done + " of " + progress.chunks_total + " chunks";
    case "merging": return "Merging the chunks";
    case "projecting": return "Projecting the top images: " + progress.projection_blocks_done + " of "
      + progress.projection_blocks_total + " blocks";
    case "done": return "Done";
    case "failed": return "Failed";
    default: return doc.status;
  }
}

// The status words and the API's message, unless the message only says the same again ("Reading the images:
// reading the images").
function withMessage(words, message) {
  if (!message || words.toLowerCase().startsWith(message.toLowerCase())) return words;
  return words + ": " + message;
}

function describeScan(doc) {
  const layers = doc.layers.map((layer) => layer.name).join(", ");
  return (doc.images !== null ? doc.images + " images" : (doc.archive ? doc.archive.images + " images uploaded" : ""))
    + " · model " + doc.model + " · " + layers + " · k = " + doc.options.k + (doc.options.skip_grey ? " · greyscale skipped" : "")
    + " · created " + doc.created.replace("T", " ").replace("Z", " UTC");
}

function drawStages(doc) {
  const planning = doc.planning;
  const bars = [planning
    ? stageBar({ id: "stage-reading", label: "Reading the images", done: planning.done, total: planning.total,
      detail: planning.done + " of " + planning.total })
    : stageBar({ id: "stage-reading", label: "Reading the images", done: 1, total: 1, detail: "done" })];
  const progress = doc.progress;
  if (progress) {
    bars.push(stageBar({ id: "stage-chunks", label: "Forward pass", done: progress.chunks_done,
      total: progress.chunks_total, detail: progress.chunks_done + " of " + progress.chunks_total + " chunks" }));
    if (progress.projection_blocks_total) {
      bars.push(stageBar({ id: "stage-projections", label: "Projections", done: progress.projection_blocks_done,
        total: progress.projection_blocks_total,
        detail: progress.projection_blocks_done + " of " + progress.projection_blocks_total + " blocks" }));
    }
  }
  stagesBox.replaceChildren(...bars);
}

// The forward pass in figures: images and chunks done, the rate, the time left.
function drawFigures(progress) {
  const forwardDone = progress.chunks_done >= progress.chunks_total;
  const items = [
    ["figure-images", "Images", progress.images_done + " of " + progress.images_total],
    ["figure-chunks", "Chunks done", progress.chunks_done + " of " + progress.chunks_total],
    ["figure-rate", "Images per second", progress.images_per_second === null ? "–"
      : progress.images_per_second.toFixed(progress.images_per_second < 10 ? 2 : 1)],
    ["figure-left", "Time left (forward pass)", forwardDone ? "done" : formatSeconds(progress.seconds_left)],
  ];
  figures.replaceChildren(...items.map(([id, label, value]) =>
    el("div", {}, [el("dt", { text: label }), el("dd", { id: id, text: value })])));
  figures.hidden = false;
}

function drawSkipped(doc) {
  const skipped = (doc.skipped || []).map((entry) => entry.path + ": " + entry.reason)
    .concat(((doc.archive && doc.archive.skipped) || []).map((entry) => entry.name + ": " + entry.reason));
  skippedBox.hidden = skipped.length === 0;
  if (skipped.length) {
    document.getElementById("scan-skipped-summary").textContent =
      skipped.length + (skipped.length === 1 ? " file skipped" : " files skipped");
    document.getElementById("scan-skipped-list").replaceChildren(...skipped.map((text) => el("li", { text: text })));
  }
}

// Shows one state of the scan; returns the milliseconds until the next poll, null once the scan is over.
function render(doc) {
  const kind = doc.status === "done" ? "finished" : doc.status === "failed" ? "failed" : doc.message ? "waiting" : "";
  setStatus(statusLine, withMessage(describeStatus(doc), doc.message), kind);
  summary.textContent = describeScan(doc);
  drawStages(doc);
  if (doc.progress) drawFigures(doc.progress);
  drawSkipped(doc);
  if (doc.progress && doc.progress.merged) showUnits(doc);
  return FINAL_STATES.includes(doc.status) ? null : 1000;
}

pollJson(root.dataset.api, {
  show: render,
  gone: (message) => setStatus(statusLine, message, "failed"),
  lost: (message, failures) => {
    setStatus(statusLine, "Connection lost, retrying…", "waiting");
    return Math.min(10000, 1000 * 2 ** failures);
  },
  httpFallback: (status) => "the server answered HTTP " + status,
});
