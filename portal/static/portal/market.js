// Market page: the price history line with the forecast and its 80 % interval as a band
// (Chart.js, vendored). Data comes from the page (json_script "market-chart").
(function () {
  "use strict";
  const canvas = document.getElementById("price-chart");
  const source = document.getElementById("market-chart");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const labels = canvas.dataset;
  const language = document.documentElement.lang || undefined;
  const point = function (row) { return { x: row[0], y: row[1] }; };
  const style = getComputedStyle(document.documentElement);
  const primary = style.getPropertyValue("--pico-primary").trim() || "#0172ad";
  const band = "rgba(1, 114, 173, 0.15)";
  const datasets = [
    {
      label: labels.labelPrice, data: data.history.map(point), borderColor: primary,
      borderWidth: 2, pointRadius: 0, stepped: true,
    },
  ];
  if (data.forecast.length) {
    datasets.push(
      {
        label: labels.labelBand, data: data.forecast.map(function (row) { return { x: row[0], y: row[2] }; }),
        borderWidth: 0, pointRadius: 0, fill: false,
      },
      {
        label: labels.labelBand, data: data.forecast.map(function (row) { return { x: row[0], y: row[3] }; }),
        borderWidth: 0, pointRadius: 0, backgroundColor: band, fill: "-1",
      },
      {
        label: labels.labelForecast, data: data.forecast.map(point), borderColor: "#d97706",
        borderDash: [6, 4], borderWidth: 2, pointRadius: 3,
      }
    );
  }
  const every = data.history.concat(data.forecast);
  const first = every.length ? every[0][0] : undefined;
  const last = every.length ? every[every.length - 1][0] : undefined;
  const format = new Intl.DateTimeFormat(language, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZone: "UTC",
  });
  new Chart(canvas, {
    type: "line",
    data: { datasets: datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      parsing: false,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      scales: {
        x: {
          type: "linear", min: first, max: last,
          ticks: { maxTicksLimit: 6, callback: function (value) { return format.format(new Date(value)); } },
        },
        y: { ticks: { callback: function (value) { return "$" + Number(value).toFixed(2); } } },
      },
      plugins: {
        legend: {
          labels: { filter: function (item) { return item.datasetIndex !== 1; } },
        },
        tooltip: {
          callbacks: {
            title: function (items) { return items.length ? format.format(new Date(items[0].parsed.x)) + " UTC" : ""; },
            label: function (item) { return item.dataset.label + ": $" + item.parsed.y.toFixed(4); },
          },
        },
      },
    },
  });
})();
