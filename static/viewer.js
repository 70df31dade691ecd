// The enlarge viewer: a click on an <a class="enlarge" data-caption="…"> inside container shows the linked
// image in the <dialog> (its <img> and <figcaption>) instead of leaving the page.
export function attachViewer(container, dialog) {
  const image = dialog.querySelector("img");
  const caption = dialog.querySelector("figcaption");
  container.addEventListener("click", (event) => {
    const link = event.target.closest("a.enlarge");
    if (!link || typeof dialog.showModal !== "function") return;
    event.preventDefault();
    image.src = link.href;
    image.alt = link.dataset.caption;
    caption.textContent = link.dataset.caption;
    dialog.showModal();
  });
  dialog.addEventListener("click", (event) => { if (event.target === dialog) dialog.close(); });
}
