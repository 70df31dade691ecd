// The controls above a deconvnet sheet: the backward rule (a toggle that projects the same seeds with another
// rule as a small job on the same photo and swaps its pictures in place, reusing a finished job when toggled
// back), and the seeds (a new job, opened as its own page). Choices come from /api/methods (visnet.methods).
import { postForm } from "./api.js";
import { el } from "./dom.js";
import { deconvData, seedForm } from "./job-forms.js";
import { RULE_WORDS, swapRulePictures } from "./job-sheet.js";
import { pollJson } from "./status.js";

// Polls a job until it ends (through lost connections; a long poll, every 0.5 s when the server cannot wait):
// resolves with its finished document, rejects with a message when it failed, was canceled or is gone.
export function finished(url) {
  return new Promise((resolve, reject) => {
    pollJson(url, {
      longPoll: true,
      show: (doc) => {
        if (doc.status === "finished") resolve(doc);
        else if (["failed", "canceled"].includes(doc.status)) reject(new Error(doc.message || doc.status));
        else return 500;
        return null;
      },
      gone: (message) => reject(new Error(message)),
      lost: (_, failures) => Math.min(10000, 1000 * failures),  // as the page's own poll: keep trying
      httpFallback: (status) => "HTTP " + status,
    });
  });
}

// The finished job of doc's photo and options with the backward rule rule: submitted once (the API answers an
// identical finished job at once), then polled.
async function jobWithRule(doc, rule, createUrl) {
  const created = await postForm(createUrl, deconvData(doc, { rule: rule }));
  if (!created.doc) throw new Error(created.message || (created.status ? "HTTP " + created.status : "the server could not be reached"));
  return created.doc.status === "finished" ? created.doc : finished(created.doc.links.self);
}

function ruleToggle(doc, choices, sheetBox, createUrl) {
  const current = (doc.options && doc.options.rule) || doc.manifest.rule || "deconvnet";
  const jobs = { [current]: Promise.resolve(doc) };  // rule -> the promise of its finished job
  const note = el("span", { id: "rule-status", class: "muted", role: "status", "aria-live": "polite" });
  let wanted = current;
  const show = async (rule) => {
    wanted = rule;
    if (!jobs[rule]) jobs[rule] = jobWithRule(doc, rule, createUrl);
    note.textContent = "Projecting with " + (RULE_WORDS[rule] || rule) + "…";
    sheetBox.setAttribute("aria-busy", "true");
    try {
      const other = await jobs[rule];
      if (wanted !== rule) return;  // toggled again meanwhile
      swapRulePictures(sheetBox, other);
      note.textContent = "Shown: " + (RULE_WORDS[rule] || rule)
        + (rule === current ? "" : " (job " + other.id.slice(0, 8) + " on the same photo)");
    } catch (failure) {
      delete jobs[rule];  // the next toggle tries again
      if (wanted !== rule) return;
      note.textContent = "Could not project with " + (RULE_WORDS[rule] || rule) + ": " + failure.message;
      const shown = document.getElementById("rule-" + sheetBox.dataset.rule);  // the pictures' rule, still shown
      if (shown) shown.checked = true;
    } finally {
      if (wanted === rule) sheetBox.removeAttribute("aria-busy");
    }
  };
  const radios = choices.map((rule) => {
    const input = el("input", { type: "radio", name: "sheet-rule", id: "rule-" + rule, value: rule,
      checked: rule === current });
    input.addEventListener("change", () => { if (input.checked) show(rule); });
    return el("label", { for: "rule-" + rule, class: "toggle" }, [input, " " + (RULE_WORDS[rule] || rule)]);
  });
  return el("fieldset", { class: "rule-toggle" }, [
    el("legend", { text: "Backward rule" }), ...radios, note,
  ]);
}

// The controls section, or null when the catalogue of methods is not known (the sheet is then shown without).
export function sheetControls(doc, deconvMethod, sheetBox, createUrl) {
  if (!deconvMethod) return null;
  const choices = (name) => ((deconvMethod.options.find((option) => option.name === name) || {}).choices || []);
  const parts = [];
  if (choices("rule").length) parts.push(ruleToggle(doc, choices("rule"), sheetBox, createUrl));
  if (choices("seed").length) {
    const seed = doc.manifest.seed || (doc.options && doc.options.seed) || "map";
    parts.push(seedForm(choices("seed"), seed, doc, createUrl));
  }
  if (!parts.length) return null;
  return el("section", { class: "layer-row sheet-controls", "aria-labelledby": "controls-heading" }, [
    el("header", {}, [el("h2", { id: "controls-heading", text: "Projection" })]),
    el("p", { class: "muted", text: "Each feature shows where it fires, the projection of its whole map, and the "
      + "projection of its single strongest activation beside the photo in that activation's receptive field. "
      + "Switch the backward rule to see the same seeds projected another way." }),
    el("div", { class: "controls" }, parts),
  ]);
}
