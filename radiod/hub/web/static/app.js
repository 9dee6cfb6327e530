// The console's only script: confirmation before irreversible actions, and the live nodes table (SSE).
"use strict";
document.addEventListener("submit", function (event) {
  var form = event.target;
  var button = event.submitter;
  var question = (button && button.dataset.confirm) || form.dataset.confirm;
  if (question && !window.confirm(question)) { event.preventDefault(); }
});
document.addEventListener("DOMContentLoaded", function () {
  var table = document.getElementById("nodes");
  if (!table || !window.EventSource) { return; }
  var rows = document.getElementById("node-rows");
  var live = document.getElementById("live");
  var source = new EventSource(table.dataset.stream);
  source.addEventListener("nodes", function (event) {
    rows.innerHTML = event.data;
    live.textContent = "trực tiếp · " + new Date().toLocaleTimeString("vi-VN");
  });
  source.onerror = function () { live.textContent = "mất kết nối, đang thử lại…"; };
});
