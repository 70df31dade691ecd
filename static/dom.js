// Building elements, for every page's script.
// el("img", {src: url, class: "thumb", text: "…"}, [children]): attributes that are null, undefined or
// false are left out, true gives an empty attribute; "text" sets textContent.
export function el(tag, attributes, children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  (children || []).forEach((child) => node.append(child));
  return node;
}
