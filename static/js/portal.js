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
    if (document.body.dataset.client) params.set("client", document.body.dataset.client);
    fetch(`${document.body.dataset.pathPreviewUrl}?${params}`, { credentials: "same-origin" })
      .then((response) => response.json())
      .then((data) => {
        output.classList.toggle("error-text", Boolean(data.error));
        output.textContent = data.error ? data.error : `→ ${data.path}`;
      })
      .catch(() => { output.textContent = ""; });
  };
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refresh, 250); });
  refresh();
});
