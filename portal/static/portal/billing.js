// Billing page: usage charged per day, stacked by kind (Chart.js, vendored); data from the
// page (json_script "usage-data").
(function () {
  "use strict";
  const canvas = document.getElementById("usage-chart");
  const source = document.getElementById("usage-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const usage = JSON.parse(source.textContent);
  const colours = ["#0172ad", "#d97706", "#6b7280"];
  const language = document.documentElement.lang || undefined;
  const format = new Intl.DateTimeFormat(language, { month: "short", day: "numeric", timeZone: "UTC" });
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: usage.days.map(function (day) { return format.format(new Date(day + "T00:00:00Z")); }),
      datasets: usage.series.map(function (series, index) {
        return { label: series.label, data: series.usd, backgroundColor: colours[index % colours.length] };
      }),
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      scales: {
        x: { stacked: true, ticks: { maxTicksLimit: 8 } },
        y: { stacked: true, beginAtZero: true, ticks: { callback: function (value) { return "$" + Number(value).toFixed(2); } } },
      },
      plugins: {
        tooltip: { callbacks: { label: function (item) { return item.dataset.label + ": $" + item.parsed.y.toFixed(2); } } },
      },
    },
  });
})();
