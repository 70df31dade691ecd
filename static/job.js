// Job page: polls /api/jobs/<id>, draws a progress bar per stage, then the result sheet (the
// deconvnet's, or a generic one for the other views); a tab per view submits a new job on the same photo.
"use strict";
(function () {
  const root = document.getElementById("job");
  const statusLine = document.getElementById("status");
  const stagesBox = document.getElementById("stages");
  const sheet = document.getElementById("sheet");
  const actions = document.getElementById("actions");
  const viewer = document.getElementById("viewer");
  const viewerImage = document.getElementById("viewer-image");
  const viewerCaption = document.getElementById("viewer-caption");
  const channelsOf = JSON.parse(root.dataset.channels);
  const viewsBox = document.getElementById("views");
  const tabsBox = document.getElementById("tabs");
  const tabNotes = document.getElementById("tab-notes");
  const tabPanel = document.getElementById("tab-panel");
  let lastDocument = null;
  let tabsDrawn = false;
  let failures = 0;

  const el = window.visnet.el;

  function setStatus(text, kind) {
    statusLine.textContent = text;
    statusLine.className = "status" + (kind ? " " + kind : "");
  }

  function stageBar(label, done, total, detail) {
    const id = "stage-" + label.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
    const bar = el("progress", { id: id, max: total || 1, "aria-label": label });
    if (done !== null) bar.value = Math.min(done, total || 1);
    return el("div", { class: "stage" + (done !== null && done >= total ? " done" : "") }, [
      el("label", { for: id }, [el("span", { text: label }), el("span", { class: "detail", text: detail || "" })]),
      bar,
    ]);
  }

  function drawStages(doc) {
    const bars = [];
    const queued = doc.status === "queued";
    const position = doc.queue_position;
    bars.push(stageBar("Queue", queued ? null : 1, 1,
      queued ? (position !== null && position !== undefined ? "position " + (position + 1) : "waiting") : "done"));
    const stages = (doc.progress && doc.progress.stages) || [];
    stages.forEach((stage) => {
      const detail = stage.total > 1 ? stage.done + " of " + stage.total : (stage.done >= stage.total ? "done" : "");
      bars.push(stageBar(stage.label, stage.done, stage.total, detail));
    });
    stagesBox.replaceChildren(...bars);
  }

  function caption(layer, feature) {
    return layer + ", channel " + feature.channel + " (norm " + feature.norm.toFixed(2) + ")";
  }

  function thumb(url, alt, title) {
    return el("a", { href: url, class: "enlarge", "data-caption": title }, [
      el("img", { src: url, alt: alt, width: 224, height: 224, decoding: "async" }),
    ]);
  }

  function projectForm(layer, doc) {
    const count = channelsOf[layer] || 1;
    const inputId = "project-" + layer;
    const input = el("input", { id: inputId, type: "number", min: 0, max: count - 1, required: true,
      inputmode: "numeric", placeholder: "0–" + (count - 1) });
    const error = el("span", { class: "project-error", role: "alert" });
    const button = el("button", { type: "submit", text: "Project" });
    const form = el("form", { class: "project" }, [
      el("label", { for: inputId, text: "Project channel" }), input, button, error,
    ]);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      const data = new FormData();
      data.append("from_job", doc.id);
      data.append("top_k", "0");
      data.append("channels", layer + ":" + input.value);
      if (doc.options && doc.options.mode) data.append("mode", doc.options.mode);
      await submitAndOpen(data, button, error);
    });
    return form;
  }

  // Submit a new job on this photo and open its page; an error is shown beside the form.
  async function submitAndOpen(data, button, error) {
    button.disabled = true;
    try {
      const response = await fetch(root.dataset.create, { method: "POST", body: data });
      const body = await response.json().catch(() => null);
      if (!response.ok) {
        error.textContent = body && body.error ? body.error.message : "HTTP " + response.status;
        return;
      }
      window.location.assign(body.links.page);
    } catch (failure) {
      error.textContent = "The server could not be reached.";
    } finally {
      button.disabled = false;
    }
  }

  // --- the other views: generic sheet -------------------------------------------------------

  function isScalar(value) {
    return value === null || ["string", "number", "boolean"].includes(typeof value);
  }

  function formatValue(value) {
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
    if (value === null) return "–";
    return String(value);
  }

  function keyFigures(data) {
    // Scalars as a two-column table; short lists of records (top-5 classes, top-15 channels, features)
    // as tables of their scalar columns. Long lists (every channel's mean) are left to the JSON.
    const parts = [];
    const rows = Object.entries(data || {}).filter(([, value]) => isScalar(value));
    Object.entries(data || {}).forEach(([key, value]) => {
      if (value && typeof value === "object" && !Array.isArray(value)
        && Object.values(value).every(isScalar)) {
        rows.push([key, Object.entries(value).map(([k, v]) => k + " " + formatValue(v)).join(", ")]);
      }
    });
    if (rows.length) {
      parts.push(el("table", { class: "figures-table", "aria-label": "Key figures" }, [
        el("tbody", {}, rows.map(([key, value]) => el("tr", {}, [
          el("th", { scope: "row", text: key.replace(/_/g, " ") }), el("td", { text: formatValue(value) })]))),
      ]));
    }
    Object.entries(data || {}).forEach(([key, value]) => {
      if (!Array.isArray(value) || !value.length || value.length > 16) return;
      if (!value.every((item) => item && typeof item === "object" && !Array.isArray(item))) return;
      const columns = Object.keys(value[0]).filter((column) => isScalar(value[0][column]));
      if (!columns.length) return;
      parts.push(el("table", { class: "figures-table", "aria-label": key.replace(/_/g, " ") }, [
        el("caption", { text: key.replace(/_/g, " ") }),
        el("thead", {}, [el("tr", {}, columns.map((column) => el("th", { scope: "col", text: column.replace(/_/g, " ") })))]),
        el("tbody", {}, value.map((item) => el("tr", {}, columns.map((column) => el("td", { text: formatValue(item[column]) }))))),
      ]));
    });
    return parts;
  }

  function drawViewSheet(doc) {
    const manifest = doc.manifest;
    const label = (methods.find((method) => method.name === doc.method) || {}).label || doc.method;
    const figures = (manifest.files || []).map((file) => el("figure", { class: "view-figure" }, [
      el("a", { href: file.file_url, class: "enlarge", "data-caption": file.caption }, [
        el("img", { src: file.file_url, alt: file.caption, width: file.width, height: file.height, decoding: "async" }),
      ]),
      el("figcaption", { text: file.caption }),
    ]));
    sheet.replaceChildren(el("section", { class: "layer-row", "aria-labelledby": "view-heading" }, [
      el("header", {}, [el("h2", { id: "view-heading", text: label })]),
      el("div", { class: "view-figures" }, figures),
      ...keyFigures(manifest.data),
    ]));
    sheet.hidden = false;
    actions.hidden = false;
  }

  // --- tabs: one per method, each a small form that submits a job on the same photo -----------

  let methods = [];
  let hasClassifier = null;

  function optionText(value) {
    if (Array.isArray(value)) return value.map((item) => (Array.isArray(item) ? item.join(":") : String(item))).join(",");
    return value === null || value === undefined ? "" : String(value);
  }

  function optionInput(method, option, value) {
    const id = "option-" + method.name + "-" + option.name;
    const attributes = { id: id, name: option.name };
    let input;
    if (option.kind === "choice") {
      input = el("select", attributes, option.choices.map((choice) =>
        el("option", { value: choice, text: choice, selected: choice === value })));
    } else if (option.kind === "layer") {
      input = el("select", attributes, Object.keys(channelsOf).map((layer) =>
        el("option", { value: layer, text: layer, selected: layer === value })));
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

  function methodForm(method, doc) {
    const current = doc.method === method.name && doc.options ? doc.options : {};
    const error = el("p", { class: "tab-error", role: "alert" });
    const button = el("button", { type: "submit", class: "primary", text: "Run " + method.label });
    const fields = method.options.map((option) =>
      optionInput(method, option, optionText(option.name in current ? current[option.name] : option.default)));
    if (!fields.length) fields.push(el("p", { class: "muted", text: "No options." }));
    const form = el("form", { class: "method-form", "data-method": method.name }, [...fields, el("div", {}, [button]), error]);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      const data = new FormData(form);
      data.append("from_job", doc.id);
      data.append("method", method.name);
      await submitAndOpen(data, button, error);
    });
    return form;
  }

  function selectTab(name, doc) {
    tabsBox.querySelectorAll("[role=tab]").forEach((tab) => {
      const selected = tab.dataset.method === name;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
    });
    const method = methods.find((item) => item.name === name);
    tabPanel.setAttribute("aria-labelledby", "tab-" + name);
    tabPanel.replaceChildren(methodForm(method, doc));
  }

  function drawTabs(doc) {
    if (tabsDrawn || !methods.length) return;
    tabsDrawn = true;
    const notes = [];
    const tabs = methods.map((method) => {
      const unavailable = method.needs_classifier && hasClassifier === false;
      const tab = el("button", { type: "button", role: "tab", id: "tab-" + method.name, "data-method": method.name,
        "aria-controls": "tab-panel", "aria-selected": "false", disabled: unavailable,
        title: unavailable ? method.label + " needs a classifier top, which the weights in use lack" : null,
        text: method.label });
      if (unavailable) {
        notes.push(method.label + ": unavailable, it needs the classifier top (fc1, fc2, predictions) "
          + "and the weights the workers serve have none.");
      }
      tab.addEventListener("click", () => selectTab(method.name, doc));
      return tab;
    });
    tabsBox.replaceChildren(...tabs);
    tabsBox.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
      const enabled = tabs.filter((tab) => !tab.disabled);
      const index = enabled.indexOf(document.activeElement);
      if (index < 0) return;
      const next = enabled[(index + (event.key === "ArrowRight" ? 1 : enabled.length - 1)) % enabled.length];
      next.focus();
      next.click();
    });
    tabNotes.textContent = notes.join(" ");
    selectTab(methods.some((method) => method.name === doc.method) ? doc.method : methods[0].name, doc);
    viewsBox.hidden = false;
  }

  async function loadMethods() {
    try {
      const response = await fetch(root.dataset.methods, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const body = await response.json();
      methods = body.methods;
      hasClassifier = body.has_classifier;
      if (lastDocument) {
        drawTabs(lastDocument);
        if (lastDocument.status === "finished" && lastDocument.manifest && lastDocument.manifest.files) {
          drawViewSheet(lastDocument);  // again, with the tab's label as heading
        }
      }
    } catch (error) {
      // Without the list the page still shows the job; the tabs stay hidden.
    }
  }

  function drawSheet(doc) {
    if (doc.manifest && !doc.manifest.layers) {
      drawViewSheet(doc);
      return;
    }
    const manifest = doc.manifest;
    const rows = manifest.layers.map((layer) => {
      const figures = layer.features.map((feature) => el("figure", { class: "feature" }, [
        el("div", { class: "pair" }, [
          thumb(feature.overlay_url, "Where " + caption(layer.name, feature) + " responds, over the photo",
            "Overlay: " + caption(layer.name, feature)),
          thumb(feature.reconstruction_url, "Deconvnet reconstruction of " + caption(layer.name, feature),
            "Reconstruction: " + caption(layer.name, feature)),
        ]),
        el("figcaption", {}, [
          "channel ", el("strong", { text: String(feature.channel) }),
          " · norm " + feature.norm.toFixed(2) + (feature.explicit ? " · requested" : ""),
        ]),
      ]));
      const headingId = "layer-" + layer.name;
      return el("section", { class: "layer-row", "aria-labelledby": headingId }, [
        el("header", {}, [
          el("h2", { id: headingId, text: layer.name }),
          el("span", { class: "muted", text: (channelsOf[layer.name] || "?") + " channels" }),
          projectForm(layer.name, doc),
        ]),
        figures.length ? el("div", { class: "features" }, figures)
          : el("p", { class: "muted", text: "No features projected for this layer." }),
      ]);
    });
    if (manifest.summary_url) {
      rows.push(el("section", { class: "layer-row", "aria-labelledby": "summary-heading" }, [
        el("header", {}, [el("h2", { id: "summary-heading", text: "Summary sheet" })]),
        el("a", { href: manifest.summary_url, class: "enlarge summary", "data-caption": "Summary sheet" }, [
          el("img", { src: manifest.summary_url, alt: "All reconstructions on one sheet" }),
        ]),
      ]));
    }
    sheet.replaceChildren(...rows);
    sheet.hidden = false;
    actions.hidden = false;
  }

  function describeTimings(doc) {
    const t = doc.timings || {};
    const parts = [];
    if (typeof t.total_seconds === "number") parts.push("computed in " + t.total_seconds.toFixed(1) + " s");
    if (doc.manifest && doc.manifest.weights) parts.push(doc.manifest.weights + " weights");
    if (doc.manifest && doc.manifest.device) parts.push(doc.manifest.device);
    return parts.length ? " · " + parts.join(" · ") : "";
  }

  function retryButton(doc) {
    const button = el("button", { type: "button", class: "primary", text: "Try again" });
    button.addEventListener("click", async () => {
      const data = new FormData();
      data.append("from_job", doc.id);
      const options = doc.options || {};
      if (doc.method && doc.method !== "deconv") {
        data.append("method", doc.method);
        Object.entries(options).forEach(([name, value]) => data.append(name, optionText(value)));
      } else if (options.layers) data.append("layers", options.layers.join(",") || "pools");
      if (!doc.method || doc.method === "deconv") {
        if (options.top_k !== undefined) data.append("top_k", String(options.top_k));
        if (options.channels) data.append("channels", options.channels.map((pair) => pair.join(":")).join(","));
        if (options.mode) data.append("mode", options.mode);
      }
      button.disabled = true;
      const response = await fetch(root.dataset.create, { method: "POST", body: data }).catch(() => null);
      const body = response ? await response.json().catch(() => null) : null;
      if (response && response.ok) window.location.assign(body.links.page);
      else setStatus(body && body.error ? body.error.message : "Could not resubmit.", "failed");
    });
    return button;
  }

  function render(doc) {
    lastDocument = doc;
    root.dataset.status = doc.status;
    drawTabs(doc);
    drawStages(doc);
    if (doc.status === "queued") {
      setStatus("Waiting in the queue" + (doc.message ? ": " + doc.message : "…"), doc.message ? "waiting" : "");
    } else if (doc.status === "started") {
      const stage = doc.progress && doc.progress.stage;
      setStatus("Running" + (stage ? ": " + stage : "…") + (doc.message ? " (" + doc.message + ")" : ""));
    } else if (doc.status === "finished") {
      setStatus("Finished" + describeTimings(doc), "finished");
      drawSheet(doc);
    } else if (doc.status === "failed") {
      setStatus("Failed: " + (doc.message || "unknown error"), "failed");
      stagesBox.append(el("div", {}, [retryButton(doc)]));
    } else {
      setStatus("Canceled: " + (doc.message || ""), "failed");
    }
  }

  async function poll() {
    let next = 500;
    try {
      const response = await fetch(root.dataset.api, { headers: { Accept: "application/json" }, cache: "no-store" });
      const body = await response.json().catch(() => null);
      if (!response.ok) {
        const message = body && body.error ? body.error.message : "HTTP " + response.status;
        if (response.status === 404) { setStatus("Not found: " + message, "failed"); return; }
        throw new Error(message);
      }
      failures = 0;
      render(body);
      if (body.status === "finished" || body.status === "failed" || body.status === "canceled") return;
      if (body.status === "queued" && body.message) next = 2000;
    } catch (error) {
      failures += 1;
      next = Math.min(10000, 1000 * failures);
      setStatus("Cannot reach the service (" + error.message + "); retrying…", "waiting");
    }
    window.setTimeout(poll, next);
  }

  sheet.addEventListener("click", (event) => {
    const link = event.target.closest("a.enlarge");
    if (!link || typeof viewer.showModal !== "function") return;
    event.preventDefault();
    viewerImage.src = link.href;
    viewerImage.alt = link.dataset.caption;
    viewerCaption.textContent = link.dataset.caption;
    viewer.showModal();
  });
  viewer.addEventListener("click", (event) => { if (event.target === viewer) viewer.close(); });

  loadMethods();
  poll();
})();
