// Sign-in: posts the key once; the server answers with an HttpOnly session cookie. The key is
// never stored by the page.
"use strict";
document.getElementById("signin").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = document.getElementById("key");
  const error = document.getElementById("error");
  error.textContent = "";
  const r = await fetch("/ui/api/session", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ key: input.value }),
    credentials: "same-origin",
  });
  input.value = "";
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    error.textContent = body.error || `sign-in failed (${r.status})`;
    return;
  }
  const next = new URLSearchParams(location.search).get("next");
  location.assign(next && next.startsWith("/ui/") ? next : "/ui/");
});
