// The unit browser of a scan's page (#browser in templates/scan.html): a layer's units page by page, sorted by
// unit number, top activation or selectivity, each with its top images and the projections of their strongest
// activation; a unit's top and bottom images in a dialog, where a unit that is not fully projected yet is
// projected on demand (a small job on the scans' queue) and fills in when it is done. The layer, sort, page,
// page size and open unit are kept in the address, so a link or a reload shows the same.
import { errorMessage, getJson } from "./api.js";
import { el } from "./dom.js";

const browser = document.getElementById("browser");
const layerPicker = document.getElementById("layer-picker");
const perPagePicker = document.getElementById("per-page");
const prevButton = document.getElementById("page-prev");
const nextButton = document.getElementById("page-next");
const pageLabel = document.getElementById("page-label");
const grid = document.getElementById("unit-grid");
const browserError = document.getElementById("browser-error");
const dialog = document.getElementById("unit-dialog");
const dialogTitle = document.getElementById("unit-title");
const dialogBody = document.getElementById("unit-body");
const sortPicker = document.getElementById("unit-sort");
const jumpForm = document.getElementById("unit-jump");
const jumpInput = document.getElementById("unit-number");
const UNIT_POLL_MS = 1000;

function formatMean(value) {
  return Number(value.toPrecision(4)).toString();
}

// GET a document of the scan's API: its body; rejects with the API's message, the HTTP status as .status.
async function getDocument(url) {
  const { response, body } = await getJson(url);
  if (response.ok) return body;
  const failure = new Error(errorMessage(body, "the server answered HTTP " + response.status));
  failure.status = response.status;
  failure.code = body && body.error ? body.error.code : undefined;
  throw failure;
}

function showError(message) {
  browserError.textContent = message;
  browserError.hidden = false;
}

function addressState() {
  const query = new URLSearchParams(window.location.search);
  const state = {
    doc: null, layer: query.get("layer"), page: parseInt(query.get("page"), 10) || 1,
    perPage: parseInt(query.get("per_page"), 10) || parseInt(perPagePicker.value, 10),
    unit: query.has("unit") ? parseInt(query.get("unit"), 10) : null,
    sort: query.get("sort") || sortPicker.value, channels: null,
    pages: 1, gridBlocks: -1, gridRequest: 0, unitRequest: 0, requested: new Set(),
  };
  if ([...sortPicker.options].some((option) => option.value === state.sort)) sortPicker.value = state.sort;
  else state.sort = sortPicker.value;
  if ([...perPagePicker.options].some((option) => option.value === String(state.perPage))) {
    perPagePicker.value = String(state.perPage);
  } else {
    state.perPage = parseInt(perPagePicker.value, 10);  // a page size the picker does not offer
  }
  return state;
}

const state = addressState();

function remember() {
  const params = new URLSearchParams();
  if (state.layer) params.set("layer", state.layer);
  params.set("sort", state.sort);
  params.set("page", state.page);
  params.set("per_page", state.perPage);
  if (state.unit !== null) params.set("unit", state.unit);
  window.history.replaceState(null, "", window.location.pathname + "?" + params.toString());
}

function layerUrl() {
  const layer = state.doc.layers.find((entry) => entry.name === state.layer);
  return layer ? layer.url : null;
}

function thumbnail(entry, unitLabel) {
  return el("img", { src: entry.thumb_url, alt: unitLabel + ", top " + (entry.rank + 1) + ": " + entry.path,
    width: 96, height: 96, loading: "lazy", decoding: "async" });
}

function formatFigure(value) {
  return value === null ? "–" : formatMean(value);
}

// "top 3.2 · selectivity 4.1", the figures the browser sorts by.
function unitFigures(unit) {
  return "top " + formatFigure(unit.top_activation) + " · selectivity " + formatFigure(unit.selectivity);
}

function unitHeading(unit, tag) {
  const parts = [el("span", { class: "unit-number", text: "Unit " + unit.channel })];
  if (unit.label) parts.push(el("span", { class: "unit-label", text: unit.label }));
  if (unit.dead) parts.push(el("span", { class: "badge dead", text: "dead", title: "zero on every image of the scan" }));
  return el(tag, { class: "unit-name" }, parts);
}

// The projections' strip of a unit in the grid: a crop per projected top image; what is missing is said in
// words (a dead unit, a unit the scan did not project, top images past those projected).
function cropStrip(unit, label, body) {
  const projected = unit.top.filter((entry) => entry.projection);
  if (!projected.length) {
    const note = unit.dead ? "dead: zero on every image"
      : unit.projected ? "being projected…" : "not projected: open the unit to project it";
    return el("div", { class: "strip crops" }, [el("span", { class: "empty-note", text: note })]);
  }
  return el("div", { class: "strip crops" }, unit.top.map((entry) => entry.projection && entry.mean === 0
    ? el("span", { class: "empty", text: "0", title: "the unit is zero on this image: nothing to project" })
    : entry.projection ? el("img", { class: "crop", src: entry.projection.crop_url, alt: label + ", strongest activation in top "
      + (entry.rank + 1), loading: "lazy", decoding: "async" })
    : el("span", { class: "empty", text: "–", title: "not projected: the scan projects the top "
      + projected.length + " of " + body.k })));
}

function unitButton(unit, body) {
  const label = body.layer + " unit " + unit.channel;
  const thumbs = el("div", { class: "strip thumbs" }, unit.top.map((entry) => thumbnail(entry, label)));
  const crops = cropStrip(unit, label, body);
  [thumbs, crops].forEach((strip) => strip.style.setProperty("--k", body.k));
  const button = el("button", { type: "button", class: "unit" + (unit.dead ? " dead" : "")
    + (unit.channel === state.unit ? " current" : ""), "data-channel": unit.channel,
    "aria-label": "Unit " + unit.channel + (unit.label ? " (" + unit.label + ")" : "") + ": top and bottom images" }, [
    unitHeading(unit, "span"), el("span", { class: "unit-figures", text: unitFigures(unit) }), thumbs, crops]);
  button.addEventListener("click", () => openUnit(unit.channel));
  return button;
}

const SORT_WORDS = { index: "by unit number", top: "by top activation", selectivity: "by selectivity" };

function drawGrid(body) {
  const first = (body.page - 1) * body.per_page;
  const last = Math.min(first + body.per_page, body.channels);
  pageLabel.textContent = "Page " + body.page + " of " + body.pages + " · "
    + (body.sort === "index" ? "units " + first + "–" + (last - 1) : "places " + (first + 1) + "–" + last + " "
      + SORT_WORDS[body.sort]) + " of " + body.channels
    + (body.dead_units ? " · " + body.dead_units + " dead" : "");
  prevButton.disabled = body.page <= 1;
  nextButton.disabled = body.page >= body.pages;
  grid.replaceChildren(...body.units.map((unit) => unitButton(unit, body)));
}

// Loads the page in state (or, given a unit, the page that holds it in the current order).
async function loadGrid(unit) {
  const ticket = ++state.gridRequest;
  const blocks = state.doc.progress.projection_blocks_done;
  const where = unit === undefined ? "page=" + state.page : "unit=" + unit;
  let body;
  try {
    body = await getDocument(layerUrl() + "?" + where + "&per_page=" + state.perPage + "&sort=" + state.sort);
  } catch (failure) {
    if (ticket !== state.gridRequest) return;
    if (failure.code === "page_not_found" && state.page !== 1 && unit === undefined) {
      state.page = 1;  // a page number from an old link, out of range at this page size
      return loadGrid();
    }
    showError("Could not load the units: " + failure.message);
    return;
  }
  if (ticket !== state.gridRequest) return;
  browserError.hidden = true;
  state.gridBlocks = blocks;
  state.pages = body.pages;
  state.page = body.page;
  state.channels = body.channels;
  jumpInput.max = body.channels - 1;
  drawGrid(body);
  remember();
}

// A picture of the dialog, or a labelled slot where it is not there yet.
function slot(url, alt, className, missing) {
  return url ? el("img", { class: className, src: url, alt: alt, loading: "lazy" })
    : el("span", { class: "slot-note " + className, text: missing });
}

// One image of the dialog: the image, then (top images) its patch, the projection of the unit's strongest
// activation and that of its whole map, or a slot that says why a picture is not there.
function unitFigure(entry, which, projected, missing) {
  const pictures = [el("img", { src: entry.thumb_url, alt: which + " " + (entry.rank + 1) + ": " + entry.path,
    loading: "lazy" })];
  if (which === "top" && projected && entry.mean === 0) {
    pictures.push(el("span", { class: "slot-note wide", text: "the unit is zero on this image: nothing to project" }));
  } else if (which === "top" && projected) {
    const projection = entry.projection || {};
    pictures.push(slot(projection.patch_url, "the image inside the receptive field", "patch", missing));
    pictures.push(slot(projection.crop_url, "projection of the strongest activation", "crop", missing));
    pictures.push(slot(projection.full_url, "projection of the whole map, full frame", "full", missing));
  } else if (which === "top") {
    pictures.push(el("span", { class: "slot-note wide", text: "not projected: the scan projects the top "
      + state.projectedK + " images of each unit" }));
  }
  return el("figure", { class: "unit-image " + which }, [
    el("div", { class: "pictures" + (pictures.length === 1 ? " single" : "") }, pictures),
    el("figcaption", {}, [
      el("span", { text: "#" + (entry.rank + 1) + " · mean " }),
      el("span", { class: "mean", text: formatMean(entry.mean) }),
      el("br"), el("small", { text: entry.path }),
    ]),
  ]);
}

// What an empty picture slot says, from the unit's projection state.
function missingWords(body) {
  const state = body.projection_state;
  if (state.state === "failed") return "projection failed: " + state.message;
  if (state.state === "queued") return "projection queued…";
  if (state.state === "running") return "projecting…";
  return "not projected";
}

function drawUnit(body) {
  const missing = missingWords(body);
  state.projectedK = body.projected_k;
  dialogTitle.textContent = body.layer + " · unit " + body.channel + (body.label ? " · " + body.label : "");
  const figures = "top activation " + formatFigure(body.top_activation) + " · mean " + formatFigure(body.mean_activation)
    + " · selectivity " + formatFigure(body.selectivity) + (body.dead ? " · dead: zero on every image of the scan" : "");
  const projected = body.top.slice(0, body.projected_k);
  dialogBody.replaceChildren(
    el("p", { id: "unit-figures", class: "unit-figures", text: figures }),
    el("p", { id: "unit-projection-state", class: "muted", text: body.complete ? ""
      : missing + " (the top " + body.projected_k + " images; this page fills in when it is done)" }),
    el("h3", { text: "Top " + body.top.length + " images (highest mean activation)" }),
    el("p", { class: "muted", text: "Each: the image as the network saw it; the image inside the receptive field of "
      + "the unit's strongest activation on it (the patch); the projection of that single activation to pixels; "
      + "the projection of the unit's whole map, full frame. Each projection is scaled on its own, grey = 0." }),
    el("div", { class: "unit-images", id: "unit-top" }, projected.map((entry) => unitFigure(entry, "top", true, missing))
      .concat(body.top.slice(body.projected_k).map((entry) => unitFigure(entry, "top", false)))),
    el("h3", { text: "Bottom " + body.bottom.length + " images (lowest mean activation)" }),
    el("div", { class: "unit-images", id: "unit-bottom" },
      body.bottom.map((entry) => unitFigure(entry, "bottom", false))),
  );
}

// Asks once for the unit's projection (the server reuses a queued one), then polls until it is done.
async function fillUnit(body, ticket) {
  const key = body.layer + ":" + body.channel;
  if (body.complete || body.projection_state.state === "failed" || body.dead) return;
  if (body.projection_state.state === "missing" && !state.requested.has(key)) {
    state.requested.add(key);
    const response = await fetch(body.projection_url, { method: "POST", headers: { Accept: "application/json" } });
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      showError("Could not ask for the projection of unit " + body.channel + ": "
        + errorMessage(answer, "the server answered HTTP " + response.status));
      return;
    }
  }
  window.setTimeout(async () => {
    if (ticket !== state.unitRequest || !dialog.open) return;
    let next;
    try {
      next = await getDocument(layerUrl() + "/units/" + body.channel);
    } catch (failure) {
      next = body;  // a lost poll: try again
    }
    if (ticket !== state.unitRequest || !dialog.open) return;
    drawUnit(next);
    if (next.complete) loadGrid();  // its crops show in the grid too
    else fillUnit(next, ticket);
  }, UNIT_POLL_MS);
}

async function openUnit(channel) {
  const ticket = ++state.unitRequest;
  let body;
  try {
    body = await getDocument(layerUrl() + "/units/" + channel);
  } catch (failure) {
    showError("Could not load unit " + channel + ": " + failure.message);
    return;
  }
  if (ticket !== state.unitRequest) return;
  state.unit = channel;
  remember();
  drawUnit(body);
  if (!dialog.open) dialog.showModal();
  fillUnit(body, ticket);
}

// Shows the browser once the scan's chunks are merged (doc: the scan's document); later calls redraw the
// grid when new projections have been written since it was drawn.
export function showUnits(doc) {
  state.doc = doc;
  if (browser.hidden) {
    layerPicker.replaceChildren(...doc.layers.map((layer) =>
      el("option", { value: layer.name, text: layer.name + " (" + layer.channels + " units)" })));
    if (!doc.layers.some((layer) => layer.name === state.layer)) {
      state.layer = doc.layers[0].name;
      state.page = 1;
    }
    layerPicker.value = state.layer;
    browser.hidden = false;
    loadGrid().then(() => {
      if (state.unit !== null) openUnit(state.unit);
    });
  } else if (doc.progress.projection_blocks_done !== state.gridBlocks) {
    loadGrid();
  }
}

dialog.addEventListener("close", () => {
  state.unit = null;
  state.unitRequest += 1;  // stops the open unit's polling
  remember();
});
sortPicker.addEventListener("change", () => {
  state.sort = sortPicker.value;
  state.page = 1;
  loadGrid();
});
jumpForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = jumpInput.value.trim();
  const unit = Number(text);
  if (!/^[0-9]+$/.test(text) || (state.channels !== null && unit >= state.channels)) {
    showError("Unit numbers of " + state.layer + " are 0 to " + (state.channels - 1) + "; received " + (text || "nothing"));
    return;
  }
  state.unit = unit;
  await loadGrid(unit);
  const button = grid.querySelector('button.unit[data-channel="' + unit + '"]');
  if (button) button.scrollIntoView({ block: "nearest" });
  openUnit(unit);
});
layerPicker.addEventListener("change", () => {
  state.layer = layerPicker.value;
  state.page = 1;
  loadGrid();
});
perPagePicker.addEventListener("change", () => {
  const firstUnit = (state.page - 1) * state.perPage;
  state.perPage = parseInt(perPagePicker.value, 10);
  state.page = Math.floor(firstUnit / state.perPage) + 1;
  loadGrid();
});
prevButton.addEventListener("click", () => {
  if (state.page > 1) { state.page -= 1; loadGrid(); }
});
nextButton.addEventListener("click", () => {
  if (state.page < state.pages) { state.page += 1; loadGrid(); }
});
