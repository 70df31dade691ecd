// A page's live state: the status line, a progress bar per stage, and polling a JSON document until it is final.
import { errorMessage, getJson } from "./api.js";
import { el } from "./dom.js";

// kind: "" (running), "waiting", "finished" or "failed"; style.css colours the line by it.
export function setStatus(line, text, kind) {
  line.textContent = text;
  line.className = "status" + (kind ? " " + kind : "");
}

// One labelled <progress>. done null: not started (an indeterminate bar); the stage is drawn as done once
// done reaches a total above 0. The id defaults to one derived from the label.
export function stageBar({ id, label, done, total, detail }) {
  const barId = id || "stage-" + label.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
  const bar = el("progress", { id: barId, max: total || 1, "aria-label": label });
  if (done !== null) bar.value = Math.min(done, total || 1);
  return el("div", { class: "stage" + (done !== null && total > 0 && done >= total ? " done" : "") }, [
    el("label", { for: barId }, [el("span", { text: label }), el("span", { class: "detail", text: detail || "" })]),
    bar,
  ]);
}

// Fetches url and hands each document to show(doc), which returns the milliseconds until the next fetch, or
// null once the document is final. A 404 ends polling with gone(message); any other failure (no answer, an
// HTTP error) calls lost(message, failures in a row), which returns the delay before trying again.
// httpFallback(status) words an HTTP error whose answer carries no message.
export function pollJson(url, { show, gone, lost, httpFallback }) {
  let failures = 0;
  async function poll() {
    let body;
    try {
      const answer = await getJson(url, { cache: "no-store" });
      body = answer.body;
      if (!answer.response.ok) {
        const message = errorMessage(body, httpFallback(answer.response.status));
        if (answer.response.status === 404) {
          gone(message);
          return;
        }
        throw new Error(message);
      }
    } catch (failure) {
      failures += 1;
      window.setTimeout(poll, lost(failure.message, failures));
      return;
    }
    failures = 0;
    const delay = show(body);
    if (delay !== null) window.setTimeout(poll, delay);
  }
  poll();
}
