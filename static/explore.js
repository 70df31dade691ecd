// The layer explorer (/jobs/<id>/explore/<layer>): every channel of one layer on the job's photo as a thumbnail
// of its post-ReLU map (cut from the feature-maps job's picture, whose manifest states each channel's L2 norm,
// mean and tile), sortable by strength. Clicking a channel (or Enter on it) projects it in place as a small
// deconvnet job on the same photo (from_job, top_k 0, channels layer:channel, the job's seeds and the chosen
// rule); a job's id is a hash of the photo and its options, so a channel clicked again, here or after a reload,
// reuses its finished job. Channels already projected are marked.
import { getJson, postForm } from "./api.js";
import { el } from "./dom.js";
import { deconvData } from "./job-forms.js";
import { finished } from "./job-sheet-controls.js";
import { PICTURE_KINDS, picture, RULE_WORDS } from "./job-sheet.js";
import { setStatus } from "./status.js";
import { attachViewer } from "./viewer.js";

const root = document.getElementById("explorer");
const layer = root.dataset.layer;
const createUrl = root.dataset.create;
const statusLine = document.getElementById("explore-status");
const body = document.getElementById("explore-body");
const gridBox = document.getElementById("channel-grid");
const readout = document.getElementById("explore-readout");
const projection = document.getElementById("projection");
const projectionStatus = document.getElementById("projection-status");
const projectionPictures = document.getElementById("projection-pictures");
const ruleBox = document.getElementById("explore-rule");
const params = new URLSearchParams(window.location.search);

const ORDERS = ["norm", "mean", "channel"];  // strongest first by L2 norm or mean, or by channel number
const state = {
  doc: null,  // the job whose photo is explored
  figures: [],  // the feature-maps job's channels: {channel, norm, mean, max, tile}
  rule: "deconvnet",
  shown: null,  // the channel whose projection is shown
  jobs: new Map(),  // "rule:channel" -> the promise of its finished projection job
  projected: {},  // rule -> Set of channels projected (kept in localStorage for this job and layer)
};

const ruleWords = (rule) => RULE_WORDS[rule] || rule;
// A measure to three significant digits, without an exponent for the large norms of deep layers.
const format = (value) => (Math.abs(value) >= 100 ? value.toFixed(0) : value === 0 ? "0" : value.toPrecision(3));

// The finished job of a submission: answered at once when the API already has it, else polled.
async function submitted(data) {
  const created = await postForm(createUrl, data);
  if (!created.doc) {
    throw new Error(created.message || (created.status ? "HTTP " + created.status : "the server could not be reached"));
  }
  return created.doc.status === "finished" ? created.doc : finished(created.doc.links.self);
}

// --- channels already projected ------------------------------------------------------------------------------

const storageKey = () => "visnet-explore:" + state.doc.id + ":" + layer;

function loadProjected() {
  try {
    const saved = JSON.parse(window.localStorage.getItem(storageKey()) || "{}");
    Object.entries(saved).forEach(([rule, channels]) => { state.projected[rule] = new Set(channels); });
  } catch (failure) { /* no storage (private mode): marks last as long as the page */ }
  // The sheet's own features of this layer were projected with its rule.
  const sheetRule = sheetRuleOf(state.doc);
  if (sheetRule) layerFeatures(state.doc).forEach((feature) => projectedSet(sheetRule).add(feature.channel));
}

function projectedSet(rule) {
  if (!state.projected[rule]) state.projected[rule] = new Set();
  return state.projected[rule];
}

function markProjected(rule, channel) {
  projectedSet(rule).add(channel);
  try {
    const saved = Object.fromEntries(Object.entries(state.projected).map(([key, set]) => [key, [...set]]));
    window.localStorage.setItem(storageKey(), JSON.stringify(saved));
  } catch (failure) { /* as above */ }
  if (rule === state.rule) labelThumb(thumbOf(channel));
}

// --- the grid ------------------------------------------------------------------------------------------------

function describeChannel(figure) {
  return "Channel " + figure.channel + ": L2 norm " + format(figure.norm) + ", mean " + format(figure.mean)
    + ", maximum " + format(figure.max) + (figure.norm === 0 ? " (silent on this photo)" : "");
}

const thumbOf = (channel) => gridBox.querySelector('.thumb[data-channel="' + channel + '"]');

// A thumbnail's accessible name and marks: its measures, and whether it is projected with the chosen rule.
function labelThumb(thumb) {
  if (!thumb) return;
  const figure = state.figures[Number(thumb.dataset.channel)];
  const done = projectedSet(state.rule).has(figure.channel);
  thumb.classList.toggle("projected", done);
  thumb.setAttribute("aria-label", describeChannel(figure)
    + (done ? "; projected with " + ruleWords(state.rule) : ""));
  thumb.title = thumb.getAttribute("aria-label");
}

function thumbnail(figure, pictureUrl) {
  const [left, top, size] = figure.tile;
  const map = el("span", { class: "thumb-map", "aria-hidden": "true" });
  map.style.backgroundImage = "url(" + JSON.stringify(pictureUrl) + ")";
  map.style.backgroundPosition = -left + "px " + -top + "px";
  map.style.width = map.style.height = size + "px";
  const thumb = el("button", { type: "button", class: "thumb" + (figure.norm === 0 ? " silent" : ""),
    "data-channel": String(figure.channel), tabindex: "-1" }, [
    map, el("span", { class: "thumb-number", "aria-hidden": "true", text: String(figure.channel) }),
  ]);
  labelThumb(thumb);
  return thumb;
}

function sortFigures(order) {
  const figures = [...state.figures];
  if (order !== "channel") figures.sort((a, b) => b[order] - a[order] || a.channel - b.channel);
  return figures;
}

function showOrder(order) {
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".thumb");
  gridBox.append(...sortFigures(order).map((figure) => thumbOf(figure.channel)));
  gridBox.dataset.order = order;
  if (focused) focused.focus();
  else setRovingFocus(gridBox.firstElementChild, false);
  updateAddress({ sort: order === "norm" ? null : order });
}

// One thumbnail of the grid is in the tab order; arrow keys move it (roving tabindex).
function setRovingFocus(thumb, focus) {
  if (!thumb) return;
  gridBox.querySelectorAll(".thumb[tabindex='0']").forEach((other) => other.setAttribute("tabindex", "-1"));
  thumb.setAttribute("tabindex", "0");
  if (focus) thumb.focus();
}

function columnsOfGrid() {
  const thumbs = gridBox.children;
  const top = thumbs[0].offsetTop;
  let columns = 0;
  while (columns < thumbs.length && thumbs[columns].offsetTop === top) columns += 1;
  return Math.max(1, columns);
}

function onGridKey(event) {
  const thumb = event.target.closest(".thumb");
  if (!thumb) return;
  const thumbs = Array.from(gridBox.children);
  const index = thumbs.indexOf(thumb);
  const columns = columnsOfGrid();
  const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns,
    Home: -index, End: thumbs.length - 1 - index };
  if (!(event.key in moves)) return;
  event.preventDefault();
  const target = thumbs[Math.min(thumbs.length - 1, Math.max(0, index + moves[event.key]))];
  setRovingFocus(target, true);
}

function showReadout(event) {
  const thumb = event.target.closest && event.target.closest(".thumb");
  if (thumb) readout.textContent = describeChannel(state.figures[Number(thumb.dataset.channel)]);
}

function drawGrid(mapsDoc) {
  const picture = (mapsDoc.manifest.files || []).find((file) => file.file === "feature_maps.png");
  state.figures = mapsDoc.manifest.data.channels;
  gridBox.replaceChildren(...state.figures.map((figure) => thumbnail(figure, picture.file_url)));
  gridBox.setAttribute("aria-label", state.figures.length + " channels of " + layer
    + ": arrow keys move, Enter projects");
  gridBox.addEventListener("keydown", onGridKey);
  gridBox.addEventListener("focusin", (event) => {
    showReadout(event);
    if (event.target.closest(".thumb")) setRovingFocus(event.target.closest(".thumb"), false);
  });
  gridBox.addEventListener("mouseover", showReadout);
  gridBox.addEventListener("click", (event) => {
    const thumb = event.target.closest(".thumb");
    if (thumb) project(Number(thumb.dataset.channel));
  });
  const order = ORDERS.includes(params.get("sort")) ? params.get("sort") : "norm";
  document.querySelector('input[name="sort"][value="' + order + '"]').checked = true;
  document.querySelectorAll('input[name="sort"]').forEach((input) => input.addEventListener("change", () => {
    if (input.checked) showOrder(input.value);
  }));
  showOrder(order);
}

// --- projections ---------------------------------------------------------------------------------------------

const isDeconv = (doc) => !doc.method || doc.method === "deconv";
const sheetRuleOf = (doc) => (isDeconv(doc) ? (doc.options && doc.options.rule) || doc.manifest.rule || "deconvnet" : null);
// The projected features of the explored layer in a deconvnet job.
const layerFeatures = (doc) => ((doc.manifest.layers || []).find((entry) => entry.name === layer) || { features: [] }).features;

// The finished job that projects channel with rule: the explored job itself when its sheet has that feature,
// else a small deconvnet job on the same photo with the same options.
function projectionJob(channel, rule) {
  const key = rule + ":" + channel;
  if (!state.jobs.has(key)) {
    const onSheet = sheetRuleOf(state.doc) === rule
      && layerFeatures(state.doc).some((feature) => feature.channel === channel);
    const base = isDeconv(state.doc) ? state.doc : { id: state.doc.id, options: {} };
    const job = onSheet ? Promise.resolve(state.doc)
      : submitted(deconvData(base, { layers: "", top_k: "0", channels: layer + ":" + channel, rule: rule }));
    job.catch(() => state.jobs.delete(key));  // a later click tries again
    state.jobs.set(key, job);
  }
  return state.jobs.get(key);
}

function showProjection(job, channel, rule) {
  const feature = layerFeatures(job).find((item) => item.channel === channel);
  if (!feature) throw new Error("the job has no projection of channel " + channel);
  // The sheet's own pictures and words (job-sheet.js), so that both say the same.
  const pictures = PICTURE_KINDS.filter((kind) => feature[kind]).map((kind) => picture(kind, layer, feature, rule));
  projectionPictures.replaceChildren(...pictures);
  const own = job.id === state.doc.id;
  projectionStatus.replaceChildren(
    el("strong", { text: "Channel " + channel }), " of " + layer + " · " + ruleWords(rule)
    + " · norm " + feature.norm.toFixed(2)
    + (typeof feature.max_value === "number" ? " · strongest activation " + feature.max_value.toFixed(2) : "")
    + " · ", own ? "from the result sheet"
      : el("a", { href: job.links.page, text: "job " + job.id.slice(0, 8) }));
  projection.dataset.channel = String(channel);
  projection.dataset.rule = rule;
  projection.dataset.job = job.id;
}

async function project(channel) {
  const rule = state.rule;
  state.shown = channel;
  updateAddress({ channel: String(channel), rule: rule === sheetRuleOf(state.doc) ? null : rule });
  gridBox.querySelectorAll(".thumb.current").forEach((thumb) => thumb.classList.remove("current"));
  const thumb = thumbOf(channel);
  if (thumb) thumb.classList.add("current");
  projection.setAttribute("aria-busy", "true");
  projectionStatus.textContent = "Projecting channel " + channel + " of " + layer + " with " + ruleWords(rule) + "…";
  try {
    const job = await projectionJob(channel, rule);
    if (state.shown !== channel || state.rule !== rule) return;  // another channel or rule was chosen meanwhile
    showProjection(job, channel, rule);
    markProjected(rule, channel);
    // On a narrow screen the projection sits above the grid: bring it into view once it is drawn.
    if (window.matchMedia("(max-width: 900px)").matches && projection.getBoundingClientRect().top < 0) {
      projection.scrollIntoView({ block: "start" });
    }
  } catch (failure) {
    if (state.shown !== channel || state.rule !== rule) return;
    projectionStatus.textContent = "Could not project channel " + channel + ": " + failure.message;
  } finally {
    if (state.shown === channel && state.rule === rule) projection.removeAttribute("aria-busy");
  }
}

// The rule toggle: the choices of the deconv method's rule option (/api/methods), the job's own rule first chosen.
async function drawRuleToggle() {
  let choices = [];
  try {
    const answer = await getJson(root.dataset.methods);
    const deconv = ((answer.body && answer.body.methods) || []).find((method) => method.name === "deconv");
    choices = ((deconv && deconv.options.find((option) => option.name === "rule")) || {}).choices || [];
  } catch (failure) { /* no toggle: the job's own rule */ }
  if (choices.length < 2) return;
  ruleBox.append(...choices.map((rule) => {
    const input = el("input", { type: "radio", name: "explore-rule", id: "explore-rule-" + rule, value: rule,
      checked: rule === state.rule });
    input.addEventListener("change", () => {
      if (!input.checked) return;
      state.rule = rule;
      gridBox.querySelectorAll(".thumb").forEach(labelThumb);
      if (state.shown !== null) project(state.shown);
    });
    return el("label", { for: "explore-rule-" + rule, class: "toggle" }, [input, " " + ruleWords(rule)]);
  }));
  ruleBox.hidden = false;
}

// Sort order, channel and rule live in the address (replaced, not pushed: Back leaves the explorer).
function updateAddress(changes) {
  const url = new URL(window.location.href);
  Object.entries(changes).forEach(([name, value]) => {
    if (value === null) url.searchParams.delete(name);
    else url.searchParams.set(name, value);
  });
  window.history.replaceState(null, "", url);
}

// --- start ---------------------------------------------------------------------------------------------------

async function start() {
  setStatus(statusLine, "Reading the job…", "");
  let doc;
  const answer = await getJson(root.dataset.api, { cache: "no-store" }).catch(() => null);
  if (!answer || !answer.response.ok) {
    const message = answer && answer.body && answer.body.error ? answer.body.error.message : "the server could not be reached";
    setStatus(statusLine, "Cannot explore this job: " + message, "failed");
    return;
  }
  doc = answer.body;
  if (doc.status !== "finished") {
    setStatus(statusLine, "Waiting for the job to finish…", "waiting");
    try {
      doc = await finished(doc.links.self);
    } catch (failure) {
      setStatus(statusLine, "Cannot explore this job: " + failure.message, "failed");
      return;
    }
  }
  state.doc = doc;
  state.rule = sheetRuleOf(doc) || "deconvnet";
  if (RULE_WORDS[params.get("rule")]) state.rule = params.get("rule");
  loadProjected();
  setStatus(statusLine, "Computing every channel's activation map…", "");
  let maps;
  try {
    const data = new FormData();
    data.append("from_job", doc.id);
    data.append("method", "feature-maps");
    data.append("layer", layer);
    data.append("scale", "per-channel");
    maps = await submitted(data);
  } catch (failure) {
    setStatus(statusLine, "Could not compute the activation maps: " + failure.message, "failed");
    return;
  }
  const channels = maps.manifest.data.channels || [];
  if (!channels.length || !channels.every((entry) => entry.tile && typeof entry.norm === "number")) {
    setStatus(statusLine, "The feature-maps job " + maps.id.slice(0, 8) + " was made by an earlier version of "
      + "VisNet, without each channel's norm and thumbnail: it cannot be explored until it expires.", "failed");
    return;
  }
  drawGrid(maps);
  await drawRuleToggle();
  body.hidden = false;
  setStatus(statusLine, state.figures.length + " channels of " + layer + " · feature-maps job "
    + maps.id.slice(0, 8), "finished");
  const channel = Number.parseInt(params.get("channel"), 10);
  if (channel >= 0 && channel < state.figures.length) project(channel);
}

attachViewer(projectionPictures, document.getElementById("viewer"));
start();
