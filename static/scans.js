// Scans page (/scans): sends the upload form to the API with a progress bar, then opens the new scan's page.
// Without this script the form posts to /scans and the server redirects to the scan's page.
import { errorMessage } from "./api.js";

const form = document.getElementById("scan-form");
const errorBox = document.getElementById("scan-error");
const button = document.getElementById("scan-submit");
const progressBox = document.getElementById("upload-progress");
const bar = document.getElementById("upload-bar");
const detail = document.getElementById("upload-detail");

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
  progressBox.hidden = true;
  button.disabled = false;
}

function showProgress(progress) {
  if (!progress.lengthComputable) return;
  bar.value = progress.loaded / progress.total;
  detail.textContent = Math.round(100 * progress.loaded / progress.total) + " %";
  if (progress.loaded >= progress.total) detail.textContent = "checking the archive…";
}

const modelSelect = document.getElementById("model");  // only when several models have live workers

// The chosen model's layers only (VGG16's checkboxes are "layer", a stored model's "layer-<name>").
function showModelLayers() {
  const chosen = modelSelect ? modelSelect.value : "vgg16";
  for (const fieldset of form.querySelectorAll("fieldset[data-model]")) {
    fieldset.hidden = fieldset.dataset.model !== chosen;
  }
}
if (modelSelect) {
  modelSelect.addEventListener("change", showModelLayers);
  showModelLayers();
}

// The API's fields: the chosen model's checked layers as one comma-separated list, skip_grey spelled out.
function formData() {
  const data = new FormData(form);
  const model = modelSelect ? modelSelect.value : "vgg16";
  const layers = data.getAll(model === "vgg16" ? "layer" : "layer-" + model);
  if (!layers.length) return null;
  for (const name of [...new Set(data.keys())]) {
    if (name === "layer" || name.startsWith("layer-")) data.delete(name);
  }
  data.set("layers", layers.join(","));
  data.set("skip_grey", form.elements.skip_grey.checked ? "true" : "false");
  return data;
}

// XMLHttpRequest rather than fetch: only it reports the upload's progress.
function upload(data) {
  const request = new XMLHttpRequest();
  request.open("POST", form.dataset.api);
  request.responseType = "json";
  request.upload.addEventListener("progress", showProgress);
  request.addEventListener("load", () => {
    if (request.status === 202 && request.response && request.response.links) {
      window.location.assign(request.response.links.page);
    } else {
      showError(errorMessage(request.response, "the server answered HTTP " + request.status));
    }
  });
  request.addEventListener("error", () => showError("The server could not be reached."));
  button.disabled = true;
  bar.value = 0;
  detail.textContent = "";
  progressBox.hidden = false;
  request.send(data);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  errorBox.hidden = true;
  const data = formData();
  if (data) upload(data);
  else showError("choose at least one layer");
});
