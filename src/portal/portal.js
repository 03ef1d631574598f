// Progressive enhancement for the portal: every form and link works without this script. It
// only shows and runs the "copy" and "print" buttons of the recovery-codes page.
"use strict";
for (const button of document.querySelectorAll("[data-copy]")) {
  button.hidden = false;
  button.addEventListener("click", () => {
    const source = document.getElementById(button.dataset.copy);
    const done = () => { button.textContent = button.dataset.done; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(source.value).then(done, () => { source.select(); });
    } else {
      source.select();
      if (document.execCommand("copy")) { done(); }
    }
  });
}
for (const button of document.querySelectorAll("[data-print]")) {
  button.hidden = false;
  button.addEventListener("click", () => window.print());
}
