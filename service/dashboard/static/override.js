// The submission view's Override buttons (slice P3): open the one override dialog as a modal for
// the question of the button. Without JavaScript the button's form asks the server to render the
// dialog open instead (?override=q), so the page works either way.
"use strict";

document.addEventListener("submit", (event) => {
  const opener = event.target;
  if (!(opener instanceof HTMLFormElement) || !opener.classList.contains("override-open")) return;
  const dialog = document.getElementById("override-dialog");
  if (!(dialog instanceof HTMLDialogElement) || typeof dialog.showModal !== "function") return;
  event.preventDefault();
  const data = opener.dataset;
  const form = dialog.querySelector("form");
  form.elements.namedItem("question").value = data.question;
  form.elements.namedItem("version").value = data.version;
  const score = form.elements.namedItem("score");
  score.value = data.score;
  score.max = data.max;
  form.elements.namedItem("reason").value = "";
  form.elements.namedItem("feedback").value = "";
  dialog.querySelector(".override-question").textContent = data.question;
  // A problem shown for another question's save does not belong to this one.
  dialog.querySelector(".override-problem")?.remove();
  if (dialog.open) dialog.close();
  dialog.showModal();
  score.focus();
});

document.addEventListener("click", (event) => {
  const cancel = event.target instanceof Element ? event.target.closest("[data-close-dialog]") : null;
  const dialog = cancel?.closest("dialog");
  if (!dialog) return;
  event.preventDefault();
  dialog.close();
});
