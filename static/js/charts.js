// Dashboard charts, without inline script (the CSP allows none): every
// <canvas data-chart="{labels, series}"> is drawn with the vendored Chart.js, loaded from
// data-chart-library the first time a page needs it (htmx-swapped pages too). The table next
// to each chart holds the same figures for screen readers and for browsers without script.
(() => {
  let library = null;

  function load(src) {
    if (window.Chart) {
      return Promise.resolve(window.Chart);
    }
    if (!library) {
      library = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = src;
        script.addEventListener("load", () => resolve(window.Chart));
        script.addEventListener("error", reject);
        document.head.appendChild(script);
      });
    }
    return library;
  }

  function config(spec) {
    const twoAxes = spec.series.some((series) => series.axis === "y1");
    const scales = { y: { beginAtZero: true } };
    if (twoAxes) {
      scales.y1 = { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } };
    }
    return {
      type: "bar",
      data: {
        labels: spec.labels,
        // Amounts arrive as decimal strings; only the drawing needs them as numbers.
        datasets: spec.series.map((series) => ({
          label: series.label,
          type: series.type || "bar",
          yAxisID: series.axis || "y",
          data: series.data.map(Number),
        })),
      },
      options: { animation: false, maintainAspectRatio: false, responsive: true, scales },
    };
  }

  function draw(root) {
    const canvases = Array.from(root.querySelectorAll("canvas[data-chart]:not([data-drawn])"));
    if (!canvases.length) {
      return;
    }
    load(canvases[0].dataset.chartLibrary).then((Chart) => {
      canvases.forEach((canvas) => {
        if (!canvas.dataset.drawn && canvas.isConnected) {
          new Chart(canvas, config(JSON.parse(canvas.dataset.chart)));
          canvas.dataset.drawn = "1";
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", () => draw(document));
  document.addEventListener("htmx:load", (event) => draw(event.target));
})();
