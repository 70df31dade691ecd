// Dataset scans. On /scans: sends the upload form to the API with a progress bar (the form also works
// without this script). On /scans/<id>: polls /api/scans/<id> for progress, then browses the units of
// each layer page by page, and shows a unit's top and bottom images in a dialog.
"use strict";
(function () {
  const el = window.visnet.el;

  function errorMessage(body, status) {
    return body && body.error ? body.error.message : "the server answered HTTP " + status;
  }

  // --- /scans: the upload form ----------------------------------------------------------------

  function enhanceUploadForm(form) {
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

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      errorBox.hidden = true;
      const data = new FormData(form);
      const layers = data.getAll("layer");
      if (!layers.length) {
        showError("choose at least one layer");
        return;
      }
      data.delete("layer");
      data.set("layers", layers.join(","));
      data.set("skip_grey", form.elements.skip_grey.checked ? "true" : "false");
      const request = new XMLHttpRequest();
      request.open("POST", form.dataset.api);
      request.responseType = "json";
      request.upload.addEventListener("progress", (progress) => {
        if (!progress.lengthComputable) return;
        bar.value = progress.loaded / progress.total;
        detail.textContent = Math.round(100 * progress.loaded / progress.total) + " %";
        if (progress.loaded >= progress.total) detail.textContent = "checking the archive…";
      });
      request.addEventListener("load", () => {
        if (request.status === 202 && request.response && request.response.links) {
          window.location.assign(request.response.links.page);
        } else {
          showError(errorMessage(request.response, request.status));
        }
      });
      request.addEventListener("error", () => showError("The server could not be reached."));
      button.disabled = true;
      bar.value = 0;
      detail.textContent = "";
      progressBox.hidden = false;
      request.send(data);
    });
  }

  // --- /scans/<id>: progress ------------------------------------------------------------------

  function formatSeconds(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const whole = Math.round(seconds);
    if (whole < 60) return whole + " s";
    if (whole < 3600) return Math.floor(whole / 60) + " min " + (whole % 60) + " s";
    return Math.floor(whole / 3600) + " h " + String(Math.floor((whole % 3600) / 60)).padStart(2, "0") + " min";
  }

  function formatMean(value) {
    return Number(value.toPrecision(4)).toString();
  }

  function scanPage(root) {
    const statusLine = document.getElementById("scan-status");
    const summary = document.getElementById("scan-summary");
    const stagesBox = document.getElementById("scan-stages");
    const figures = document.getElementById("scan-figures");
    const skippedBox = document.getElementById("scan-skipped");
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

    const query = new URLSearchParams(window.location.search);
    const state = {
      doc: null, layer: query.get("layer"), page: parseInt(query.get("page"), 10) || 1,
      perPage: parseInt(query.get("per_page"), 10) || parseInt(perPagePicker.value, 10),
      unit: query.has("unit") ? parseInt(query.get("unit"), 10) : null,
      pages: 1, gridBlocks: -1, gridRequest: 0, unitRequest: 0, failures: 0,
    };
    if ([...perPagePicker.options].some((option) => option.value === String(state.perPage))) {
      perPagePicker.value = String(state.perPage);
    } else {
      state.perPage = parseInt(perPagePicker.value, 10);  // a page size the picker does not offer
    }

    function remember() {
      const params = new URLSearchParams();
      if (state.layer) params.set("layer", state.layer);
      params.set("page", state.page);
      params.set("per_page", state.perPage);
      if (state.unit !== null) params.set("unit", state.unit);
      window.history.replaceState(null, "", window.location.pathname + "?" + params.toString());
    }

    function setStatus(text, kind) {
      statusLine.textContent = text;
      statusLine.className = "status" + (kind ? " " + kind : "");
    }

    function stageBar(id, label, done, total, detail) {
      const bar = el("progress", { id: id, max: total || 1, "aria-label": label });
      bar.value = Math.min(done, total || 1);
      return el("div", { class: "stage" + (total && done >= total ? " done" : "") }, [
        el("label", { for: id }, [el("span", { text: label }), el("span", { class: "detail", text: detail })]),
        bar,
      ]);
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

    function drawProgress(doc) {
      const kind = doc.status === "done" ? "finished" : doc.status === "failed" ? "failed" : doc.message ? "waiting" : "";
      setStatus(describeStatus(doc) + (doc.message ? ": " + doc.message : ""), kind);
      const layers = doc.layers.map((layer) => layer.name).join(", ");
      summary.textContent = (doc.images !== null ? doc.images + " images" : (doc.archive ? doc.archive.images
        + " images uploaded" : "")) + " · " + layers + " · k = " + doc.options.k
        + (doc.options.skip_grey ? " · greyscale skipped" : "") + " · created " + doc.created.replace("T", " ").replace("Z", " UTC");

      const bars = [];
      if (doc.planning) {
        bars.push(stageBar("stage-reading", "Reading the images", doc.planning.done, doc.planning.total,
          doc.planning.done + " of " + doc.planning.total));
      } else {
        bars.push(stageBar("stage-reading", "Reading the images", 1, 1, "done"));
      }
      const progress = doc.progress;
      if (progress) {
        bars.push(stageBar("stage-chunks", "Forward pass", progress.chunks_done, progress.chunks_total,
          progress.chunks_done + " of " + progress.chunks_total + " chunks"));
        if (progress.projection_blocks_total) {
          bars.push(stageBar("stage-projections", "Projections", progress.projection_blocks_done,
            progress.projection_blocks_total, progress.projection_blocks_done + " of "
            + progress.projection_blocks_total + " blocks"));
        }
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
      stagesBox.replaceChildren(...bars);

      const skipped = (doc.skipped || []).map((entry) => entry.path + ": " + entry.reason)
        .concat(((doc.archive && doc.archive.skipped) || []).map((entry) => entry.name + ": " + entry.reason));
      skippedBox.hidden = skipped.length === 0;
      if (skipped.length) {
        document.getElementById("scan-skipped-summary").textContent =
          skipped.length + (skipped.length === 1 ? " file skipped" : " files skipped");
        document.getElementById("scan-skipped-list").replaceChildren(...skipped.map((text) => el("li", { text: text })));
      }
    }

    async function poll() {
      let doc;
      try {
        const response = await fetch(root.dataset.api, { headers: { Accept: "application/json" } });
        const body = await response.json().catch(() => null);
        if (!response.ok) {
          if (response.status === 404) {
            setStatus(errorMessage(body, response.status), "failed");
            return;
          }
          throw new Error(errorMessage(body, response.status));
        }
        doc = body;
        state.failures = 0;
      } catch (failure) {
        state.failures += 1;
        setStatus("Connection lost, retrying…", "waiting");
        window.setTimeout(poll, Math.min(10000, 1000 * 2 ** state.failures));
        return;
      }
      state.doc = doc;
      drawProgress(doc);
      if (doc.progress && doc.progress.merged) showBrowser(doc);
      if (doc.status !== "done" && doc.status !== "failed") window.setTimeout(poll, 1000);
    }

    // --- the unit browser ----------------------------------------------------------------------

    function layerUrl() {
      const layer = state.doc.layers.find((entry) => entry.name === state.layer);
      return layer ? layer.url : null;
    }

    function showBrowser(doc) {
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
        loadGrid();  // new projections have been written since the grid was drawn
      }
    }

    async function loadGrid() {
      const ticket = ++state.gridRequest;
      const blocks = state.doc.progress.projection_blocks_done;
      const url = layerUrl() + "?page=" + state.page + "&per_page=" + state.perPage;
      let body;
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" } });
        body = await response.json().catch(() => null);
        if (response.status === 400 && state.page !== 1 && ticket === state.gridRequest) {
          state.page = 1;  // a page number from an old link, out of range at this page size
          return loadGrid();
        }
        if (!response.ok) throw new Error(errorMessage(body, response.status));
      } catch (failure) {
        if (ticket !== state.gridRequest) return;
        browserError.textContent = "Could not load the units: " + failure.message;
        browserError.hidden = false;
        return;
      }
      if (ticket !== state.gridRequest) return;
      browserError.hidden = true;
      state.gridBlocks = blocks;
      state.pages = body.pages;
      drawGrid(body);
      remember();
    }

    function thumbnail(entry, unitLabel) {
      return el("img", { src: entry.thumb_url, alt: unitLabel + ", top " + (entry.rank + 1) + ": " + entry.path,
        width: 96, height: 96, loading: "lazy", decoding: "async" });
    }

    function drawGrid(body) {
      const first = (body.page - 1) * body.per_page;
      const last = Math.min(first + body.per_page, body.channels) - 1;
      pageLabel.textContent = "Page " + body.page + " of " + body.pages + " · units " + first + "–" + last
        + " of " + body.channels;
      prevButton.disabled = body.page <= 1;
      nextButton.disabled = body.page >= body.pages;
      grid.replaceChildren(...body.units.map((unit) => {
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
      }));
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
      const url = layerUrl() + "/units/" + channel;
      let body;
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" } });
        body = await response.json().catch(() => null);
        if (!response.ok) throw new Error(errorMessage(body, response.status));
      } catch (failure) {
        browserError.textContent = "Could not load unit " + channel + ": " + failure.message;
        browserError.hidden = false;
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
    poll();
  }

  const form = document.getElementById("scan-form");
  if (form) enhanceUploadForm(form);
  const root = document.getElementById("scan");
  if (root) scanPage(root);
})();
