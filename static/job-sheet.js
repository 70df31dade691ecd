// The result sheet of a finished job: the deconvnet's (a row per layer with its features' overlay and
// reconstruction, a channel form, the summary sheet), or the generic one of the other methods (its
// figures and the key figures of its manifest's data). Every image links to itself for the viewer.
import { el } from "./dom.js";
import { channelForm } from "./job-forms.js";

function isScalar(value) {
  return value === null || ["string", "number", "boolean"].includes(typeof value);
}

function formatValue(value) {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  if (value === null) return "–";
  return String(value);
}

// Scalars as a two-column table; short lists of records (top-5 classes, top-15 channels, features) as tables
// of their scalar columns. Long lists (every channel's mean) are left to the JSON.
function keyFigures(data) {
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

// The sheet of a method other than the deconvnet, headed by the method's label.
function viewRows(doc, label) {
  const manifest = doc.manifest;
  const figures = (manifest.files || []).map((file) => el("figure", { class: "view-figure" }, [
    el("a", { href: file.file_url, class: "enlarge", "data-caption": file.caption }, [
      el("img", { src: file.file_url, alt: file.caption, width: file.width, height: file.height, decoding: "async" }),
    ]),
    el("figcaption", { text: file.caption }),
  ]));
  return [el("section", { class: "layer-row", "aria-labelledby": "view-heading" }, [
    el("header", {}, [el("h2", { id: "view-heading", text: label })]),
    el("div", { class: "view-figures" }, figures),
    ...keyFigures(manifest.data),
  ])];
}

function caption(layer, feature) {
  return layer + ", channel " + feature.channel + " (norm " + feature.norm.toFixed(2) + ")";
}

function thumb(url, alt, title) {
  return el("a", { href: url, class: "enlarge", "data-caption": title }, [
    el("img", { src: url, alt: alt, width: 224, height: 224, decoding: "async" }),
  ]);
}

// A feature ranked against a reference scan (manifest.ranking.rank "distinctive") carries its score in σ.
function distinctiveScore(feature) {
  if (feature.reference_mean === undefined) return "";
  return " · " + (feature.score === null ? "no score" : (feature.score >= 0 ? "+" : "") + feature.score.toFixed(2) + " σ");
}

function featureFigure(layer, feature) {
  return el("figure", { class: "feature" }, [
    el("div", { class: "pair" }, [
      thumb(feature.overlay_url, "Where " + caption(layer, feature) + " responds, over the photo",
        "Overlay: " + caption(layer, feature)),
      thumb(feature.reconstruction_url, "Deconvnet reconstruction of " + caption(layer, feature),
        "Reconstruction: " + caption(layer, feature)),
    ]),
    el("figcaption", {}, [
      "channel ", el("strong", { text: String(feature.channel) }),
      " · norm " + feature.norm.toFixed(2) + distinctiveScore(feature) + (feature.explicit ? " · requested" : ""),
    ]),
  ]);
}

// The deconvnet's sheet; channels: each layer's channel count.
function deconvRows(doc, channels, createUrl) {
  const manifest = doc.manifest;
  const rows = manifest.layers.map((layer) => {
    const figures = layer.features.map((feature) => featureFigure(layer.name, feature));
    const headingId = "layer-" + layer.name;
    return el("section", { class: "layer-row", "aria-labelledby": headingId }, [
      el("header", {}, [
        el("h2", { id: headingId, text: layer.name }),
        el("span", { class: "muted", text: (channels[layer.name] || "?") + " channels" }),
        channelForm(layer.name, channels[layer.name] || 1, doc, createUrl),
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
  return rows;
}

// Whether doc's sheet is the generic one of a method other than the deconvnet, headed by the method's label.
export function hasViewSheet(doc) {
  return Boolean(doc.manifest && !doc.manifest.layers);
}

// Draws a finished job's sheet into sheetBox; methodLabel: the heading of a generic sheet.
export function drawSheet(sheetBox, doc, { channels, createUrl, methodLabel }) {
  const rows = hasViewSheet(doc) ? viewRows(doc, methodLabel) : deconvRows(doc, channels, createUrl);
  sheetBox.replaceChildren(...rows);
  sheetBox.hidden = false;
}
