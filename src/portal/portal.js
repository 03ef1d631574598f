// Progressive enhancement for the portal: every form and link works without this script. It
// shows and runs the "copy" and "print" buttons of the recovery-codes page, and follows an
// approval on a device: the requesting page goes on by itself once the request is decided, and
// an approver's page shows a new request when one arrives (both long-poll a JSON answer that
// the gateway holds until something changes; without the script, a button or a reload does).
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

// Asks `url` again and again (each answer is held by the gateway up to 25 s) until `done`
// says to stop; after an error, waits 5 s before asking again.
const follow = (url, done) => {
  const ask = () => fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(String(r.status)))))
    .then((answer) => { if (!done(answer)) { ask(); } })
    .catch(() => { setTimeout(ask, 5000); });
  ask();
};
const requesting = document.querySelector("form[data-approval-wait]");
if (requesting) {
  follow(requesting.dataset.approvalWait, (a) => {
    if (a.state === "approved") { requesting.submit(); return true; }
    if (a.state !== "pending") { window.location.reload(); return true; }
    return false;
  });
}
const approver = document.querySelector("[data-approvals-wait]");
if (approver) {
  follow(approver.dataset.approvalsWait, (a) => {
    if ((a.reference || "") !== approver.dataset.seen) { window.location.reload(); return true; }
    return false;
  });
}
