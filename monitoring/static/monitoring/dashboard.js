// Admin home page charts (Chart.js from static/vendor/chartjs, no CDN).
(function () {
  "use strict";
  var node = document.getElementById("dashboard-data");
  if (!node || typeof Chart === "undefined") { return; }
  var data = JSON.parse(node.textContent);
  function chart(id, type, labels, values, label, colors) {
    var canvas = document.getElementById(id);
    if (!canvas) { return; }
    new Chart(canvas, {
      type: type,
      data: { labels: labels, datasets: [colors ? { label: label, data: values, backgroundColor: colors }
                                                 : { label: label, data: values }] },
      options: { responsive: true, animation: false, plugins: { legend: { display: type !== "bar" } } }
    });
  }
  chart("chart-messages", "bar", data.labels, data.values, "messages");
  chart("chart-instances", "doughnut", data.instances.labels, data.instances.values, "instances", data.instances.colors);
  chart("chart-accounts", "doughnut", data.accounts.labels, data.accounts.values, "accounts", data.accounts.colors);
})();
