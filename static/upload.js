// Upload page: drag and drop, example photos, and submitting through the JSON API.
// Without JavaScript the form posts to /jobs and the server redirects to the job page.
import { postForm } from "./api.js";

const form = document.getElementById("upload-form");
const input = document.getElementById("image");
const zone = document.getElementById("drop-zone");
const preview = document.getElementById("preview");
const previewNote = document.getElementById("preview-note");
const errorBox = document.getElementById("error");
const submitButton = document.getElementById("submit");
const layerChoice = document.getElementById("layer-choice");
let chosen = null; // a File from the picker, a drop or an example

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = !message;
  if (message) errorBox.focus();
}
errorBox.tabIndex = -1;

function preset() {
  return form.querySelector("input[name=preset]:checked").value;
}
function syncLayerChoice() {
  const custom = preset() === "custom";
  layerChoice.querySelectorAll("input").forEach((box) => { box.disabled = !custom; });
}
form.querySelectorAll("input[name=preset]").forEach((radio) => radio.addEventListener("change", syncLayerChoice));
syncLayerChoice();

// Choosing a reference scan ranks by distinctiveness, on the layers that scan recorded (the only ones it can rank).
const rankSelect = document.getElementById("rank");
const referenceSelect = document.getElementById("reference");
referenceSelect.addEventListener("change", () => {
  const option = referenceSelect.selectedOptions[0];
  if (!option || !option.value) return;
  rankSelect.value = "distinctive";
  const layers = option.dataset.layers.split(",");
  form.querySelector("input[name=preset][value=custom]").checked = true;
  layerChoice.querySelectorAll("input").forEach((box) => { box.checked = layers.includes(box.value); });
  syncLayerChoice();
});

// No preview (nothing chosen, or a file the browser cannot draw); note: why, in words, or "".
function clearPreview(note) {
  if (preview.getAttribute("src")) URL.revokeObjectURL(preview.src);
  preview.removeAttribute("src");
  preview.alt = "";
  preview.hidden = true;
  previewNote.textContent = note;
  zone.classList.remove("has-file");
}

function choose(file) {
  chosen = file;
  showError("");
  clearPreview("");
  preview.src = URL.createObjectURL(file);
  preview.alt = "Chosen photo: " + file.name;
  preview.hidden = false;
  zone.classList.add("has-file");
}
// A file this browser cannot draw is most likely no photo at all: no broken picture, a sentence instead.
preview.addEventListener("error", () => {
  if (!chosen || !preview.getAttribute("src")) return;
  clearPreview(chosen.name + " cannot be shown: it does not read as a picture here, so the server will most "
    + "likely refuse it too. Choose a JPEG, PNG, WebP, GIF or BMP photo.");
});
input.addEventListener("change", () => { if (input.files.length) choose(input.files[0]); });

["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
  event.preventDefault();
  zone.classList.add("dragging");
}));
["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("dragging")));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  const file = event.dataTransfer.files[0];
  if (file) choose(file);
});

async function submit() {
  if (!chosen) { showError("Choose a photo first, or click one of the examples."); return; }
  const data = new FormData();
  data.append("image", chosen, chosen.name);
  if (preset() === "custom") {
    const names = Array.from(layerChoice.querySelectorAll("input:checked"), (box) => box.value);
    if (!names.length) { showError("Choose at least one layer."); return; }
    data.append("layers", names.join(","));
  } else {
    data.append("layers", preset());
  }
  data.append("top_k", document.getElementById("top_k").value);
  data.append("mode", document.getElementById("mode").value);
  data.append("rank", rankSelect.value);
  data.append("fit", document.getElementById("fit").value);
  if (rankSelect.value === "distinctive") data.append("reference", referenceSelect.value);
  const modelSelect = document.getElementById("model");  // only when several models have live workers
  if (modelSelect) data.append("model", modelSelect.value);
  submitButton.disabled = true;
  submitButton.textContent = "Uploading…";
  const result = await postForm(form.dataset.api || "/api/jobs", data);
  submitButton.disabled = false;
  submitButton.textContent = "Visualise";
  if (result.page) window.location.assign(result.page);
  else if (result.status) {
    // The server refused the file itself (not an image, damaged): its preview would only mislead.
    if ([415, 422].includes(result.status)) clearPreview(chosen.name + " was refused.");
    showError(result.message || "The upload failed (HTTP " + result.status + ").");
  }
  else showError("The server could not be reached: " + result.message);
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!form.reportValidity || form.querySelector("#top_k").reportValidity()) submit();
});
input.required = false; // the picker is one of three ways to choose; submit() checks

document.querySelectorAll("button.example").forEach((button) => button.addEventListener("click", async () => {
  try {
    const response = await fetch(button.dataset.src);
    const blob = await response.blob();
    choose(new File([blob], button.dataset.name, { type: blob.type || "image/jpeg" }));
    submit();
  } catch (error) {
    showError("Could not load the example: " + error.message);
  }
}));
