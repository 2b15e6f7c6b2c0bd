// Behaviour the pages need beyond htmx, without inline script (the CSP allows none).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-print]");
  if (button) {
    window.print();
  }
});
