// The job page's forms: each submits a new job on the same photo (from_job) and opens its page. The channel
// form projects one typed channel of a layer; the method form runs a method with its options; a failed
// job is resubmitted with its own options.
import { postForm } from "./api.js";
import { el } from "./dom.js";

// An option's value as the API's form field spells it: lists comma-separated, channel pairs as layer:channel.
function optionText(value) {
  if (Array.isArray(value)) return value.map((item) => (Array.isArray(item) ? item.join(":") : String(item))).join(",");
  return value === null || value === undefined ? "" : String(value);
}

// Submits data to the API and opens the new job's page; an error is shown in errorNode.
async function submitAndOpen(createUrl, data, button, errorNode) {
  button.disabled = true;
  const result = await postForm(createUrl, data);
  button.disabled = false;
  if (result.page) window.location.assign(result.page);
  else if (result.status) errorNode.textContent = result.message || "HTTP " + result.status;
  else errorNode.textContent = "The server could not be reached.";
}

// The form fields of a deconvnet job on the same photo as doc, with doc's options except overrides
// ({option: text}; an empty text leaves the option to its default).
export function deconvData(doc, overrides) {
  const data = new FormData();
  data.append("from_job", doc.id);
  Object.entries({ ...(doc.options || {}), ...overrides }).forEach(([name, value]) => {
    const text = optionText(value);
    if (text !== "") data.append(name, text);
  });
  return data;
}

// "Project channel [n] (Project)" beside a layer of the deconvnet's sheet; channels: the layer's channel count.
// The projection keeps the shown job's options (rule, seeds, mode).
export function channelForm(layer, channels, doc, createUrl) {
  const inputId = "project-" + layer;
  const input = el("input", { id: inputId, type: "number", min: 0, max: channels - 1, required: true,
    inputmode: "numeric", placeholder: "0–" + (channels - 1) });
  const error = el("span", { class: "project-error", role: "alert" });
  const button = el("button", { type: "submit", text: "Project" });
  const form = el("form", { class: "project" }, [
    el("label", { for: inputId, text: "Project channel" }), input, button, error,
  ]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const data = deconvData(doc, { layers: "", top_k: "0", channels: layer + ":" + input.value });
    await submitAndOpen(createUrl, data, button, error);
  });
  return form;
}

// "Seeds [map|max|both] (Run)": the same photo and options with other seeds, opened as a new job.
export function seedForm(choices, current, doc, createUrl) {
  const words = { map: "map: each channel's whole map", max: "max: its strongest activation only",
    both: "both: whole map and strongest activation" };
  const select = el("select", { id: "sheet-seed", name: "seed" }, choices.map((choice) =>
    el("option", { value: choice, text: words[choice] || choice, selected: choice === current })));
  const error = el("span", { class: "project-error", role: "alert" });
  const button = el("button", { type: "submit", text: "Run with these seeds" });
  const form = el("form", { class: "project seed-form" }, [
    el("label", { for: "sheet-seed", text: "Seeds" }), select, button, error,
  ]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    await submitAndOpen(createUrl, deconvData(doc, { seed: select.value }), button, error);
  });
  return form;
}

// One labelled field for a method's option, by its kind; layer options choose among layerNames.
function optionField(method, option, value, layerNames) {
  const id = "option-" + method.name + "-" + option.name;
  const attributes = { id: id, name: option.name };
  let input;
  if (option.kind === "choice") {
    input = el("select", attributes, option.choices.map((choice) =>
      el("option", { value: choice, text: choice, selected: choice === value })));
  } else if (option.kind === "layer") { // the option's own layers when it has them (filters: conv layers only)
    input = el("select", attributes, (option.choices && option.choices.length ? option.choices : layerNames).map((layer) =>
      el("option", { value: layer, text: layer, selected: layer === value })));
  } else if (option.kind === "scan") { // the reference scans the API lists (GET /api/methods: option.scans)
    const scans = option.scans || [];
    input = el("select", attributes, [
      el("option", { value: "", text: scans.length ? "none" : "none yet: no finished scan on these weights" }),
      ...scans.map((scan) => el("option", { value: scan.id, text: scan.label, selected: scan.id === value })),
    ]);
  } else if (["int", "float", "channel"].includes(option.kind)) {
    input = el("input", { ...attributes, type: "number", inputmode: "decimal", value: value,
      min: option.minimum === null ? (option.kind === "channel" ? 0 : null) : option.minimum,
      max: option.maximum, step: option.kind === "float" ? "any" : 1, required: true });
  } else {
    input = el("input", { ...attributes, type: "text", value: value, spellcheck: "false" });
  }
  return el("div", { class: "field" }, [el("label", { for: id, text: option.name.replace(/_/g, " ") }), input,
    el("small", { text: option.help })]);
}

// The text a method's form field starts with: the shown job's value when it ran this method, else the
// default. A job that also used options the form does not show (a projected channel: the deconvnet's
// explicit channels, with top_k 0 and no layers) starts from the defaults for the numbers and layers those
// replaced, which the form could not submit without them; its choices (rule, seeds, mode) carry over.
function startingText(option, current, usedHidden) {
  const text = option.name in current ? optionText(current[option.name]) : "";
  if (text === "") return optionText(option.default);
  if (usedHidden && ["int", "float", "choice_or_layers"].includes(option.kind)) return optionText(option.default);
  return text;
}

// The form of one method (an entry of /api/methods), filled with values it accepts (startingText).
export function methodForm(method, doc, layerNames, createUrl) {
  const current = doc.method === method.name && doc.options ? doc.options : {};
  const shown = new Set(method.options.map((option) => option.name));
  const usedHidden = Object.entries(current).some(([name, value]) => !shown.has(name) && optionText(value) !== "");
  const error = el("p", { class: "tab-error", role: "alert" });
  const button = el("button", { type: "submit", class: "primary", text: "Run " + method.label });
  const fields = method.options.map((option) => optionField(method, option, startingText(option, current, usedHidden),
    layerNames));
  if (!fields.length) fields.push(el("p", { class: "muted", text: "No options." }));
  const form = el("form", { class: "method-form", "data-method": method.name }, [...fields, el("div", {}, [button]), error]);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const data = new FormData(form);
    data.append("from_job", doc.id);
    data.append("method", method.name);
    await submitAndOpen(createUrl, data, button, error);
  });
  return form;
}

// The form fields that submit the job doc again: its method and options.
function resubmitData(doc) {
  if (!doc.method || doc.method === "deconv") return deconvData(doc, {});
  const data = new FormData();
  data.append("from_job", doc.id);
  data.append("method", doc.method);
  Object.entries(doc.options || {}).forEach(([name, value]) => data.append(name, optionText(value)));
  return data;
}

// "Try again" under a failed job; a refusal is handed to showError.
export function retryButton(doc, createUrl, showError) {
  const button = el("button", { type: "button", class: "primary", text: "Try again" });
  button.addEventListener("click", async () => {
    button.disabled = true;
    const result = await postForm(createUrl, resubmitData(doc));
    if (result.page) window.location.assign(result.page);
    else showError(result.status && result.message ? result.message : "Could not resubmit.");
  });
  return button;
}
