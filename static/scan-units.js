// The unit browser of a scan's page (#browser in templates/scan.html): a layer's units page by page, each
// with its top images and their projections, and a unit's top and bottom images in a dialog. The layer,
// page, page size and open unit are kept in the address, so a link or a reload shows the same.
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

function formatMean(value) {
  return Number(value.toPrecision(4)).toString();
}

// GET a document of the scan's API: its body; rejects with the API's message, the HTTP status as .status.
async function getDocument(url) {
  const { response, body } = await getJson(url);
  if (response.ok) return body;
  const failure = new Error(errorMessage(body, "the server answered HTTP " + response.status));
  failure.status = response.status;
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
    pages: 1, gridBlocks: -1, gridRequest: 0, unitRequest: 0,
  };
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

function unitButton(unit, body) {
  const label = body.layer + " unit " + unit.channel;
  const thumbs = el("div", { class: "strip thumbs" }, unit.top.map((entry) => thumbnail(entry, label)));
  const crops = el("div", { class: "strip crops" }, unit.top.map((entry) => entry.projection
    ? el("img", { class: "crop", src: entry.projection.crop_url, alt: label + ", projection of top "
      + (entry.rank + 1), loading: "lazy", decoding: "async" })
    : el("span", { class: "empty", title: "not projected" })));
  [thumbs, crops].forEach((strip) => strip.style.setProperty("--k", body.k));
  const button = el("button", { type: "button", class: "unit", "data-channel": unit.channel,
    "aria-label": "Unit " + unit.channel + ": top and bottom images" }, [
    el("span", { class: "unit-name", text: "Unit " + unit.channel }), thumbs, crops]);
  button.addEventListener("click", () => openUnit(unit.channel));
  return button;
}

function drawGrid(body) {
  const first = (body.page - 1) * body.per_page;
  const last = Math.min(first + body.per_page, body.channels) - 1;
  pageLabel.textContent = "Page " + body.page + " of " + body.pages + " · units " + first + "–" + last
    + " of " + body.channels;
  prevButton.disabled = body.page <= 1;
  nextButton.disabled = body.page >= body.pages;
  grid.replaceChildren(...body.units.map((unit) => unitButton(unit, body)));
}

async function loadGrid() {
  const ticket = ++state.gridRequest;
  const blocks = state.doc.progress.projection_blocks_done;
  let body;
  try {
    body = await getDocument(layerUrl() + "?page=" + state.page + "&per_page=" + state.perPage);
  } catch (failure) {
    if (ticket !== state.gridRequest) return;
    if (failure.status === 400 && state.page !== 1) {
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
  drawGrid(body);
  remember();
}

function unitFigure(entry, which, withProjection) {
  const pictures = [el("img", { src: entry.thumb_url, alt: which + " " + (entry.rank + 1) + ": " + entry.path,
    loading: "lazy" })];
  if (withProjection && entry.projection) {
    pictures.push(el("img", { src: entry.projection.full_url, alt: "projection, full frame", loading: "lazy" }));
    pictures.push(el("img", { class: "crop", src: entry.projection.crop_url, alt: "projection, receptive field",
      loading: "lazy" }));
  } else if (withProjection) {
    pictures.push(el("span", { class: "not-projected", text: "not projected" }));
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
  dialogTitle.textContent = body.layer + " · unit " + body.channel;
  dialogBody.replaceChildren(
    el("h3", { text: "Top " + body.top.length + " images (highest mean activation)" }),
    el("p", { class: "muted", text: "Each: the image as the network saw it, the deconvnet projection of this unit "
      + "on it, and the projection inside the unit's receptive field." }),
    el("div", { class: "unit-images", id: "unit-top" }, body.top.map((entry) => unitFigure(entry, "top", true))),
    el("h3", { text: "Bottom " + body.bottom.length + " images (lowest mean activation)" }),
    el("div", { class: "unit-images", id: "unit-bottom" },
      body.bottom.map((entry) => unitFigure(entry, "bottom", false))),
  );
  if (!dialog.open) dialog.showModal();
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
  remember();
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
