// Small progressive enhancements; every page works without them.
document.addEventListener("dblclick", (event) => {
  const row = event.target.closest("tr[data-href]");
  if (row) window.location.assign(row.dataset.href);
});
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
});

// Live preview of path templates: what a sample document's folder would be.
document.querySelectorAll("input[data-path-preview]").forEach((input) => {
  const output = document.createElement("output");
  output.className = "path-preview";
  output.setAttribute("aria-live", "polite");
  input.insertAdjacentElement("afterend", output);
  let timer = null;
  const refresh = () => {
    const params = new URLSearchParams({ template: input.value, category: input.dataset.pathPreview });
    if (input.dataset.pathRooted) params.set("rooted", "1");
    if (input.dataset.pathInherit !== undefined) params.set("inherit", input.dataset.pathInherit);
    if (document.body.dataset.client) params.set("client", document.body.dataset.client);
    fetch(`${document.body.dataset.pathPreviewUrl}?${params}`, { credentials: "same-origin" })
      .then((response) => response.json())
      .then((data) => {
        output.classList.toggle("error-text", Boolean(data.error));
        output.textContent = data.error ? data.error : `→ ${data.text || data.path}`;
      })
      .catch(() => { output.textContent = ""; });
  };
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refresh, 250); });
  refresh();
});

// Export rows waiting for delivery: ask for their state now and then and redraw the row
// the server renders, until none waits. Without script the page shows it on reload.
(() => {
  const POLL_MS = 10000;
  const poll = () => {
    const rows = Array.from(document.querySelectorAll("li[data-job-state]"));
    if (!rows.length) return;
    if (document.hidden) { setTimeout(poll, POLL_MS); return; }
    Promise.all(rows.map((row) =>
      fetch(row.dataset.jobState, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((response) => (response.ok ? response.json() : null))
        .then((data) => {
          if (!row.isConnected) return;
          if (!data) { row.removeAttribute("data-job-state"); return; }  // gone: stop asking
          const template = document.createElement("template");
          template.innerHTML = data.html.trim();
          const fresh = template.content.firstElementChild;
          if (fresh && fresh.outerHTML !== row.outerHTML) row.replaceWith(fresh);
          else if (!data.waiting) row.removeAttribute("data-job-state");
        })
        .catch(() => {})
    )).then(() => setTimeout(poll, POLL_MS));
  };
  setTimeout(poll, POLL_MS);
})();

// --- Forms and pages: error summary focus, the Active switch, top bar menu, launcher ---
(() => {
  // A form sent back with errors: focus its first wrong field (the summary says them all).
  const summary = document.querySelector("[data-error-summary]");
  if (summary) {
    const form = summary.closest("form") || document;
    const field = form.querySelector("[aria-invalid='true']");
    (field || summary).focus();
  }
  // Forms that ask before they act (the Active switch): a dialog instead of the page.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); return; }
      const confirmed = document.createElement("input");
      confirmed.type = "hidden"; confirmed.name = "confirmed"; confirmed.value = "1";
      form.appendChild(confirmed);
    });
  });
  // The top bar on a phone: its items behind a Menu button.
  const topbar = document.querySelector(".topbar");
  const toggle = document.querySelector(".menu-toggle");
  if (topbar && toggle) {
    topbar.classList.add("js-menu");
    toggle.hidden = false;
    toggle.addEventListener("click", () => {
      const open = topbar.classList.toggle("menu-open");
      toggle.setAttribute("aria-expanded", String(open));
    });
  }
  // Escape closes the app launcher and gives the focus back to its button.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const launcher = document.getElementById("app-launcher");
    if (launcher && launcher.open) {
      launcher.open = false;
      launcher.querySelector("summary").focus();
    }
  });
})();
