// Passkeys in the browser: WebAuthn's binary fields travel as unpadded base64url, and every
// post carries the session's form token like any form on the page.
const tgB64u = {
  enc(buffer) {
    let text = "";
    for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
  dec(text) {
    text = text.replace(/-/g, "+").replace(/_/g, "/");
    while (text.length % 4) text += "=";
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  },
};

async function tgPost(url, fields) {
  const response = await fetch(url, {method: "POST", body: new URLSearchParams(fields), credentials: "same-origin"});
  const body = await response.json().catch(() => ({error: response.statusText}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function tgShow(text, ok) {
  const box = document.getElementById("passkey-status");
  box.textContent = text;
  box.className = "msg " + (ok ? "ok" : "error");
  box.hidden = false;
}

// Enroll: the page's challenge in, the new credential's public key out (for an
// administrator to endorse); the private key never leaves the authenticator.
async function tgEnroll(csrf) {
  try {
    const options = (await tgPost("/passkey/options", {csrf})).publicKey;
    const credential = await navigator.credentials.create({publicKey: {
      ...options,
      challenge: tgB64u.dec(options.challenge),
      user: {...options.user, id: tgB64u.dec(options.user.id)},
      excludeCredentials: (options.excludeCredentials || []).map((c) => ({...c, id: tgB64u.dec(c.id)})),
    }});
    const response = credential.response;
    const made = await tgPost("/passkey", {csrf, credential: JSON.stringify({
      id: credential.id,
      rawId: tgB64u.enc(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: tgB64u.enc(response.clientDataJSON),
        attestationObject: tgB64u.enc(response.attestationObject),
        transports: response.getTransports ? response.getTransports() : [],
      },
      clientExtensionResults: credential.getClientExtensionResults(),
    })});
    document.getElementById("enrolled-key").textContent = made.key_id;
    document.getElementById("enrolled-code").textContent = made.code;
    document.getElementById("enrolled").hidden = false;
    tgShow("Passkey enrolled. An administrator endorses it before you can decide with it.", true);
  } catch (error) {
    tgShow("The passkey was not enrolled: " + error.message, false);
  }
}

// Decide: the page prepares the answer, the passkey signs its challenge, the form carries
// the assertion back; the workflow verifies it against the endorsed public key.
async function tgDecide(form, decision) {
  try {
    form.elements.decision.value = decision;
    const fields = Object.fromEntries(new FormData(form));
    const options = (await tgPost(form.action + "/challenge", fields)).publicKey;
    const assertion = await navigator.credentials.get({publicKey: {
      ...options,
      challenge: tgB64u.dec(options.challenge),
      allowCredentials: options.allowCredentials.map((c) => ({...c, id: tgB64u.dec(c.id)})),
    }});
    const response = assertion.response;
    form.elements.assertion.value = JSON.stringify({
      credential_id: assertion.id,
      authenticator_data: tgB64u.enc(response.authenticatorData),
      client_data_json: tgB64u.enc(response.clientDataJSON),
      signature: tgB64u.enc(response.signature),
      user_handle: response.userHandle ? tgB64u.enc(response.userHandle) : "",
    });
    form.submit();
  } catch (error) {
    tgShow("Nothing was sent: " + error.message, false);
  }
}
