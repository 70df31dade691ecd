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

// The longest wait a long poll may ask for (GET /api/jobs/<id>?since=&wait=; app.jobs.long_poll.MAX_WAIT_SECONDS).
const LONG_POLL_SECONDS = 10;

// Fetches url and hands each document to show(doc), which returns the milliseconds until the next fetch, or
// null once the document is final. A 404 ends polling with gone(message); any other failure (no answer, an
// HTTP error) calls lost(message, failures in a row), which returns the delay before trying again.
// httpFallback(status) words an HTTP error whose answer carries no message.
// longPoll (a job's document, which carries a revision): each fetch after the first sends the revision it has
// as since, with wait, and the server answers as soon as the document changes. A changed document is fetched
// again at once; an unchanged one (the wait ran out, or the server had no thread to spare and answered at once)
// keeps show's schedule, its delay counted from when that fetch was sent.
export function pollJson(url, { show, gone, lost, httpFallback, longPoll }) {
  let failures = 0;
  let revision = null;
  async function poll() {
    const sentAt = performance.now();
    let body;
    try {
      const answer = await getJson(longPoll && revision ? waitingUrl(url, revision) : url, { cache: "no-store" });
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
    const changed = Boolean(longPoll && body.revision && body.revision !== revision);
    if (longPoll) revision = body.revision || null;
    const delay = show(body);
    if (delay === null) return;
    window.setTimeout(poll, changed ? 0 : Math.max(0, delay - (performance.now() - sentAt)));
  }
  poll();
}

function waitingUrl(url, revision) {
  const waiting = new URL(url, window.location.href);
  waiting.searchParams.set("since", revision);
  waiting.searchParams.set("wait", String(LONG_POLL_SECONDS));
  return waiting.href;
}
