// Loads /api/info through ringfront and shows the JSON that Gunicorn returned.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const button = document.querySelector("#load-info");
  const output = document.querySelector("#info");
  if (!button || !output) {
    return;
  }

  button.addEventListener("click", async () => {
    button.disabled = true;
    output.textContent = "Loading…";
    const started = performance.now();
    try {
      const response = await fetch("/api/info", { headers: { Accept: "application/json" } });
      const body = await response.json();
      const elapsed = (performance.now() - started).toFixed(1);
      output.textContent = `HTTP ${response.status} in ${elapsed} ms\n` + JSON.stringify(body, null, 2);
    } catch (error) {
      output.textContent = `Request failed: ${error}`;
    } finally {
      button.disabled = false;
    }
  });
});
