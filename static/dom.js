// Helpers shared by the pages' scripts (loaded before them): building elements.
"use strict";
window.visnet = window.visnet || {};
// el("img", {src: url, class: "thumb", text: "…"}, [children]): attributes that are null, undefined or
// false are left out, true gives an empty attribute; "text" sets textContent.
window.visnet.el = function el(tag, attributes, children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  (children || []).forEach((child) => node.append(child));
  return node;
};
