// runfleet console: the run page's live event log.
//
// The server renders (and escapes) each event as a table row and sends it
// as a server-sent event whose id is its seq. Rows are appended in seq
// order, each once. When the connection drops, a new one asks for the
// events after the last seq shown, so nothing is missed or doubled.
(function () {
  "use strict";
  var log = document.getElementById("events");
  var state = document.getElementById("live-state");
  if (!log || !window.EventSource) {
    return;
  }
  function lastSeq() {
    var rows = log.querySelectorAll("tr[data-seq]");
    if (rows.length === 0) {
      return Number(log.dataset.after || "0");
    }
    return Number(rows[rows.length - 1].dataset.seq);
  }
  function say(text) {
    if (state) {
      state.textContent = text;
    }
  }
  function connect() {
    var source = new EventSource(log.dataset.live + "?after=" + lastSeq());
    source.addEventListener("open", function () {
      say("Live: new events appear as they are published.");
    });
    source.addEventListener("event", function (message) {
      if (Number(message.lastEventId) > lastSeq()) {
        log.insertAdjacentHTML("beforeend", message.data);
      }
    });
    source.addEventListener("error", function () {
      source.close();
      say("Reconnecting…");
      window.setTimeout(connect, 1000);
    });
  }
  connect();
})();
