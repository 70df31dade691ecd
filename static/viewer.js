// The enlarge viewer: a click on an <a class="enlarge" data-caption="…"> inside container shows the linked
// image in the <dialog> instead of leaving the page. A feature's overlay and whole-map projection are shown
// side by side (so are its strongest-activation projection and the photo there); Previous and Next (buttons,
// or the arrow keys) step through the sheet's pictures in its order, a pair at a time.

// The pictures that go together in the viewer, by the data-kind of the sheet's .picture figures.
const PARTNERS = { overlay: "reconstruction", reconstruction: "overlay", patch: "photo_patch", photo_patch: "patch" };
const ORDER = ["overlay", "reconstruction", "patch", "photo_patch"];

// The links shown together with link, in the sheet's order: its partner in the same feature, if any.
function groupOf(link) {
  const picture = link.closest(".picture[data-kind]");
  const partnerKind = picture && PARTNERS[picture.dataset.kind];
  const feature = picture && picture.closest(".feature");
  const partner = feature && feature.querySelector('.picture[data-kind="' + partnerKind + '"] a.enlarge');
  if (!partner) return [link];
  return [link, partner].sort((a, b) => ORDER.indexOf(a.closest(".picture").dataset.kind)
    - ORDER.indexOf(b.closest(".picture").dataset.kind));
}

// Every group of container's pictures once, in the sheet's order.
function groupsIn(container) {
  const groups = [];
  const seen = new Set();
  container.querySelectorAll("a.enlarge").forEach((link) => {
    if (seen.has(link)) return;
    const group = groupOf(link);
    group.forEach((member) => seen.add(member));
    groups.push(group);
  });
  return groups;
}

export function attachViewer(container, dialog) {
  const pictures = dialog.querySelector("#viewer-pictures");
  const caption = dialog.querySelector("#viewer-caption");
  const position = dialog.querySelector("#viewer-position");
  const previous = dialog.querySelector("#viewer-previous");
  const next = dialog.querySelector("#viewer-next");
  let groups = [];
  let index = 0;

  const show = (at) => {
    index = (at + groups.length) % groups.length;
    const group = groups[index];
    const images = group.map((link, order) => {
      const image = document.createElement("img");
      if (order === 0) image.id = "viewer-image";  // the first picture of the pair (tests, and its size)
      image.src = link.href;
      image.alt = link.dataset.caption || "";
      return image;
    });
    pictures.replaceChildren(...images);
    pictures.classList.toggle("pair", images.length > 1);
    const words = group.map((link) => link.dataset.caption || "");
    caption.textContent = words.length > 1 ? "Left: " + words[0] + ". Right: " + words[1] + "." : words[0];
    position.textContent = (index + 1) + " of " + groups.length;
    previous.disabled = next.disabled = groups.length < 2;
  };

  container.addEventListener("click", (event) => {
    const link = event.target.closest("a.enlarge");
    if (!link || typeof dialog.showModal !== "function") return;
    event.preventDefault();
    groups = groupsIn(container);  // the sheet may have changed (a rule toggle swaps pictures)
    show(Math.max(0, groups.findIndex((group) => group.includes(link))));
    if (!dialog.open) dialog.showModal();
  });
  previous.addEventListener("click", () => show(index - 1));
  next.addEventListener("click", () => show(index + 1));
  dialog.addEventListener("keydown", (event) => {
    if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      event.preventDefault();
      show(index + (event.key === "ArrowRight" ? 1 : -1));
    }
  });
  dialog.addEventListener("click", (event) => { if (event.target === dialog) dialog.close(); });
}
