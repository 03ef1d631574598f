// Passkeys for the portal (WebAuthn), loaded only by the pages that offer them. Every form
// here also exists without this script; without it, the passkey button stays hidden and the
// page says that passkeys need JavaScript. A ceremony: the server began it with the page and
// put its options (JSON) in the form's `data-options` (the page's CSP lets this script connect
// nowhere); ask the authenticator, put its answer into the hidden `credential` field as JSON,
// and submit the form as usual. A failed answer comes back as a page with a new ceremony.
"use strict";
(() => {
  const decode = (text) => {
    const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
  };
  const encode = (buffer) => {
    let text = "";
    for (const b of new Uint8Array(buffer)) { text += String.fromCharCode(b); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const withIds = (list) => (list || []).map((c) => ({ ...c, id: decode(c.id) }));

  const register = async (options) => {
    const pk = options.publicKey;
    pk.challenge = decode(pk.challenge);
    pk.user = { ...pk.user, id: decode(pk.user.id) };
    pk.excludeCredentials = withIds(pk.excludeCredentials);
    const cred = await navigator.credentials.create({ publicKey: pk });
    return {
      id: cred.id,
      rawId: encode(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: encode(cred.response.attestationObject),
        clientDataJSON: encode(cred.response.clientDataJSON),
      },
      extensions: {},
    };
  };

  const verify = async (options) => {
    const pk = options.publicKey;
    pk.challenge = decode(pk.challenge);
    pk.allowCredentials = withIds(pk.allowCredentials);
    const cred = await navigator.credentials.get({ publicKey: pk });
    const response = {
      authenticatorData: encode(cred.response.authenticatorData),
      clientDataJSON: encode(cred.response.clientDataJSON),
      signature: encode(cred.response.signature),
    };
    if (cred.response.userHandle) { response.userHandle = encode(cred.response.userHandle); }
    return { id: cred.id, rawId: encode(cred.rawId), type: cred.type, response, extensions: {} };
  };

  const errorBox = document.querySelector("[data-passkey-error]");
  const show = (text) => {
    if (errorBox) { errorBox.textContent = text; errorBox.hidden = false; }
  };

  for (const form of document.querySelectorAll("form[data-passkey]")) {
    if (!window.PublicKeyCredential || !navigator.credentials || !form.dataset.options) { continue; }
    const button = form.querySelector("[data-passkey-button]");
    button.hidden = false;
    for (const note of document.querySelectorAll("[data-passkey-nojs]")) { note.hidden = true; }
    const ceremony = form.dataset.passkey === "register" ? register : verify;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!form.reportValidity()) { return; }
      button.disabled = true;
      try {
        const credential = await ceremony(JSON.parse(form.dataset.options));
        form.querySelector("input[name=credential]").value = JSON.stringify(credential);
        form.submit();
      } catch (e) {
        // Cancelled, timed out, or no authenticator: the same ceremony can be tried again.
        button.disabled = false;
        show(form.dataset.failed);
      }
    });
  }
})();
