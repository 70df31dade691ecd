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

// The backward rules in words (visnet.methods: the deconv method's rule option).
export const RULE_WORDS = { deconvnet: "deconvnet", guided: "guided backprop", gradient: "gradient" };

function ruleWords(rule) {
  return RULE_WORDS[rule] || rule;
}

// What each picture of a feature is: its visible label, and the alt text and viewer caption (with the feature).
function describePicture(kind, layer, feature, rule) {
  const field = feature.field;
  const where = feature.max_position ? " at row " + feature.max_position[0] + ", column " + feature.max_position[1]
    + " of its map" : "";
  const words = {
    overlay: ["Where it fires", "Where " + caption(layer, feature) + " responds, over the photo"],
    reconstruction: ["Whole map · " + ruleWords(rule),
      "Projection of the whole map of " + caption(layer, feature) + " by " + ruleWords(rule)],
    patch: ["Strongest activation · " + ruleWords(rule),
      "Projection of the single strongest activation of " + caption(layer, feature) + where + " by "
      + ruleWords(rule) + ", cropped to its receptive field"
      + (field ? " (" + field.side + " × " + field.side + " px)" : "")],
    photo_patch: ["Photo there" + (field ? " · " + field.side + " px" : ""),
      "The photo in the receptive field of the strongest activation of " + caption(layer, feature)
      + (field ? ": " + field.side + " × " + field.side + " px from row " + field.top + ", column " + field.left : "")],
  };
  return { label: words[kind][0], alt: words[kind][1] };
}

// The pictures a feature has, in the sheet's order (visnet.display.SHEET_TILE_KINDS).
export const PICTURE_KINDS = ["overlay", "reconstruction", "patch", "photo_patch"];
// The pictures that depend on the backward rule: a rule toggle swaps these.
const RULE_KINDS = ["reconstruction", "patch"];

export function picture(kind, layer, feature, rule) {
  const words = describePicture(kind, layer, feature, rule);
  const url = feature[kind + "_url"];
  const patch = kind === "patch" || kind === "photo_patch";
  const size = patch && feature.field ? feature.field.side : 224;
  return el("figure", { class: "picture" + (patch ? " patch" : ""), "data-kind": kind }, [
    el("a", { href: url, class: "enlarge", "data-caption": words.alt }, [
      el("img", { src: url, alt: words.alt, width: size, height: size, decoding: "async" }),
    ]),
    el("figcaption", { class: "picture-label", text: words.label }),
  ]);
}

// A feature ranked against a reference scan (manifest.ranking.rank "distinctive") carries its score in σ.
function distinctiveScore(feature) {
  if (feature.reference_mean === undefined) return "";
  return " · " + (feature.score === null ? "no score" : (feature.score >= 0 ? "+" : "") + feature.score.toFixed(2) + " σ");
}

// A channel whose map is zero everywhere on this photo (max_value 0): every picture of it would be flat grey.
function isSilent(feature) {
  return feature.max_value === 0;
}

// A figure of the feature: its measure (a term explained by the legend, and on hover), its score when ranked
// against a reference scan, its strongest activation.
function featureFigures(feature, terms) {
  return [
    "channel ", el("strong", { text: String(feature.channel) }), " · ",
    el("span", { class: "term", title: terms.norm || null, text: "norm" }), " " + feature.norm.toFixed(2)
      + distinctiveScore(feature),
    ...(typeof feature.max_value === "number" ? [" · ", el("span", { class: "term", title: terms.max_value || null,
      text: "strongest activation" }), " " + feature.max_value.toFixed(2)] : []),
    feature.explicit ? " · requested" : "",
  ];
}

function featureFigure(layer, feature, rule, terms) {
  const kinds = PICTURE_KINDS.filter((kind) => feature[kind]);
  const silent = isSilent(feature);
  const body = silent
    ? el("p", { class: "silent", text: "Silent on this photo: the map of " + layer + ", channel " + feature.channel
      + " is zero everywhere, so there is nothing to project (its " + kinds.length + " pictures would be flat grey)." })
    : el("div", { class: "pictures count-" + kinds.length }, kinds.map((kind) => picture(kind, layer, feature, rule)));
  return el("figure", { class: "feature" + (kinds.length > 2 && !silent ? " wide" : "") + (silent ? " is-silent" : ""),
    "data-layer": layer, "data-channel": String(feature.channel) }, [body, el("figcaption", {}, featureFigures(feature, terms))]);
}

// The photo as the network saw it (input.png, 224 × 224), with what fit did to a photo that is not square, and
// the legend of the figures beside each feature (the manifest's terms and ranking).
function inputRow(manifest) {
  const input = manifest.input;
  const terms = manifest.terms || {};
  const ranking = manifest.ranking || {};
  const legend = [];
  if (ranking.rank === "distinctive") {
    legend.push(["score (σ)", "the ranking measure: " + ranking.words]);
    if (terms.norm) legend.push(["norm", terms.norm + "; shown for comparison, not the ranking measure"]);
  } else if (terms.norm) {
    legend.push(["norm", terms.norm + "; the ranking measure: each layer's top k are the channels with the largest"]);
  }
  if (terms.max_value) legend.push(["strongest activation", terms.max_value]);
  const children = [el("header", {}, [el("h2", { id: "input-heading", text: "The photo as the network saw it" })])];
  const body = [];
  if (input && input.file_url) {
    body.push(el("figure", { class: "input-photo" }, [
      el("a", { href: input.file_url, class: "enlarge", "data-caption": "The photo as the network saw it" }, [
        el("img", { src: input.file_url, width: input.size[0], height: input.size[1],
          alt: "The photo as the network saw it: " + input.size[0] + " × " + input.size[1] + " px, fit " + input.fit }),
      ]),
      el("figcaption", { class: "muted", text: input.size[0] + " × " + input.size[1] + " px · fit " + input.fit
        + " (" + input.original_size[0] + " × " + input.original_size[1] + " px uploaded)" }),
    ]));
  }
  const words = [];
  if (input && input.note) words.push(el("p", { class: "fit-note", role: "note", text: input.note }));
  if (legend.length) {
    words.push(el("dl", { class: "legend", "aria-label": "What the figures mean" }, legend.flatMap(([term, meaning]) => [
      el("dt", { text: term }), el("dd", { text: meaning })])));
  }
  body.push(el("div", { class: "input-words" }, words));
  children.push(el("div", { class: "input-row" }, body));
  return el("section", { class: "layer-row sheet-input", "aria-labelledby": "input-heading" }, children);
}

// Shows the rule-dependent pictures of doc (a finished deconvnet job on the same photo and seeds, projected
// with another backward rule) in place of the ones on the sheet; the overlays and photo patches stay.
export function swapRulePictures(sheetBox, doc) {
  const rule = (doc.options && doc.options.rule) || doc.manifest.rule || "deconvnet";
  doc.manifest.layers.forEach((layer) => layer.features.forEach((feature) => {
    const figure = sheetBox.querySelector('.feature[data-layer="' + layer.name + '"][data-channel="'
      + feature.channel + '"]');
    if (!figure) return;
    RULE_KINDS.forEach((kind) => {
      const node = figure.querySelector('.picture[data-kind="' + kind + '"]');
      if (!node || !feature[kind + "_url"]) return;
      const words = describePicture(kind, layer.name, feature, rule);
      const link = node.querySelector("a");
      const image = node.querySelector("img");
      link.href = feature[kind + "_url"];
      link.dataset.caption = words.alt;
      image.src = feature[kind + "_url"];
      image.alt = words.alt;
      node.querySelector(".picture-label").textContent = words.label;
    });
  }));
  const summary = sheetBox.querySelector("a.summary");
  if (summary && doc.manifest.summary_url) {
    summary.href = doc.manifest.summary_url;
    summary.querySelector("img").src = doc.manifest.summary_url;
  }
  sheetBox.dataset.rule = rule;
}

// The deconvnet's sheet; channels: each layer's channel count; controls: the section of the sheet's controls.
function deconvRows(doc, channels, createUrl, controls) {
  const manifest = doc.manifest;
  const rule = manifest.rule || "deconvnet";
  const rows = manifest.layers.map((layer) => {
    const figures = layer.features.map((feature) => featureFigure(layer.name, feature, rule, manifest.terms || {}));
    const headingId = "layer-" + layer.name;
    return el("section", { class: "layer-row", "aria-labelledby": headingId }, [
      el("header", {}, [
        el("h2", { id: headingId, text: layer.name }),
        el("span", { class: "muted", text: (channels[layer.name] || "?") + " channels" }),
        el("a", { class: "explore-link", href: doc.links.page + "/explore/" + encodeURIComponent(layer.name),
          text: "Explore every channel", "aria-label": "Explore every channel of " + layer.name }),
        channelForm(layer.name, channels[layer.name] || 1, doc, createUrl),
      ]),
      figures.length ? el("div", { class: "features" }, figures)
        : el("p", { class: "muted", text: "No features projected for this layer." }),
    ]);
  });
  if (controls) rows.unshift(controls);
  if (manifest.input || manifest.terms) rows.unshift(inputRow(manifest));
  if (manifest.summary_url) {
    rows.push(el("section", { class: "layer-row", "aria-labelledby": "summary-heading" }, [
      el("header", {}, [el("h2", { id: "summary-heading", text: "Summary sheet" })]),
      el("a", { href: manifest.summary_url, class: "enlarge summary", "data-caption": "Summary sheet" }, [
        el("img", { src: manifest.summary_url, alt: "All pictures of this sheet on one image" }),
      ]),
    ]));
  }
  return rows;
}

// Whether doc's sheet is the generic one of a method other than the deconvnet, headed by the method's label.
function hasViewSheet(doc) {
  return Boolean(doc.manifest && !doc.manifest.layers);
}

// Puts the figures already on the sheet (a feature of the same layer and channel, the photo's row) into rows in
// place of their new copies, so that their images stay loaded while a running job's sheet grows.
function keepDrawn(sheetBox, rows) {
  return rows.map((row) => {
    if (row.classList.contains("sheet-input")) return sheetBox.querySelector(":scope > .sheet-input") || row;
    row.querySelectorAll(".feature").forEach((figure) => {
      const drawn = sheetBox.querySelector('.feature[data-layer="' + figure.dataset.layer + '"][data-channel="'
        + figure.dataset.channel + '"]');
      if (drawn) figure.replaceWith(drawn);
    });
    return row;
  });
}

// Draws a job's sheet into sheetBox; methodLabel: the heading of a generic sheet; controls: a section of controls
// shown above a deconvnet sheet (job-sheet-controls.js), or null; keep: reuse the figures already drawn (a running
// job's sheet so far), else everything is drawn anew.
export function drawSheet(sheetBox, doc, { channels, createUrl, methodLabel, controls, keep = false }) {
  let rows = hasViewSheet(doc) ? viewRows(doc, methodLabel) : deconvRows(doc, channels, createUrl, controls);
  if (keep) rows = keepDrawn(sheetBox, rows);
  sheetBox.replaceChildren(...rows);
  if (!hasViewSheet(doc)) sheetBox.dataset.rule = doc.manifest.rule || "deconvnet";
  sheetBox.hidden = false;
}
