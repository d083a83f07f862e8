// Small progressive enhancements; every page works without them.
document.addEventListener("dblclick", (event) => {
  const row = event.target.closest("tr[data-href]");
  if (row) window.location.assign(row.dataset.href);
});
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
});
