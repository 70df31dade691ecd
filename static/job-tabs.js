// The job page's method tabs (#views in templates/job.html): a tab per method of /api/methods, each showing
// the method's form; the shown job's method is selected. A method that needs the classifier top is marked
// unavailable (data-unavailable) when the workers' weights lack it: its own tab, still selectable, shows the reason
// and how to enable it (from the API) in place of a form, and no other tab repeats it.
import { el } from "./dom.js";
import { methodForm } from "./job-forms.js";

// {methods: [{name, label, needs_classifier, options, unavailable?}], has_classifier}, or null when the list cannot be had:
// the page then shows the job without tabs.
export async function fetchMethods(url) {
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    return response.ok ? await response.json() : null;
  } catch (error) {
    return null;
  }
}

// The label of a method by name, the name itself for one not in the list.
export function methodLabel(methods, name) {
  return (methods.find((method) => method.name === name) || {}).label || name;
}

function selectTab(tabs, panel, form) {
  tabs.forEach((tab) => {
    const selected = tab.dataset.method === form.dataset.method;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
  });
  panel.setAttribute("aria-labelledby", "tab-" + form.dataset.method);
  panel.replaceChildren(form);
}

// Arrow keys move between the tabs, selecting each (an unavailable one shows why).
function moveWithArrowKeys(tabList, tabs) {
  tabList.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
    const index = tabs.indexOf(document.activeElement);
    if (index < 0) return;
    const next = tabs[(index + (event.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    next.focus();
    next.click();
  });
}

// The tab chosen on this page is kept in its address (?view=method) with replaceState: a reload shows the
// same tab, and choosing tabs adds no history entries that Back would have to walk through.
function rememberTab(name, jobMethod) {
  const url = new URL(window.location.href);
  if (name === jobMethod) url.searchParams.delete("view");
  else url.searchParams.set("view", name);
  if (url.href !== window.location.href) window.history.replaceState(window.history.state, "", url.href);
}

// Draws the tabs once; catalogue: the answer of /api/methods; layerNames: the choices of layer options.
export function drawTabs(catalogue, doc, layerNames, createUrl) {
  const section = document.getElementById("views");
  const tabList = document.getElementById("tabs");
  const panel = document.getElementById("tab-panel");
  const methods = catalogue.methods;
  const tabs = methods.map((method) => {
    const unavailable = method.needs_classifier && catalogue.has_classifier === false;
    // The API words why and how to enable it (visnet.methods: Method.classifier_missing).
    const reason = method.unavailable || (method.label + " needs a classifier top (fc1, fc2, predictions), and "
      + "the weights the workers serve have none");
    const tab = el("button", { type: "button", role: "tab", id: "tab-" + method.name, "data-method": method.name,
      "aria-controls": "tab-panel", "aria-selected": "false", "data-unavailable": unavailable ? "true" : null,
      title: unavailable ? reason : null, text: method.label });
    // Not disabled, so that its reason can be read where it belongs: on its own tab, instead of a form.
    tab.show = () => selectTab(tabs, panel, unavailable
      ? el("p", { class: "tab-note", "data-method": method.name, text: reason + "." })
      : methodForm(method, doc, layerNames, createUrl));
    tab.addEventListener("click", () => {
      tab.show();
      rememberTab(method.name, doc.method);
    });
    return tab;
  });
  tabList.replaceChildren(...tabs);
  moveWithArrowKeys(tabList, tabs);
  const asked = new URLSearchParams(window.location.search).get("view");
  const usable = (name) => tabs.find((tab) => tab.dataset.method === name && !tab.dataset.unavailable);
  (usable(asked) || tabs.find((tab) => tab.dataset.method === doc.method) || tabs[0]).show();
  section.hidden = false;
}
