// gitopsd dashboard: a run's output as its drivers print it. The run page's
// <pre id="live-output" data-logs="/runs/ID/logs"> holds the output as it was when the page
// was rendered; this script follows the run's Server-Sent Events from there: the first
// "output" event carries the output from its start (it replaces the rendered text), later
// ones what came next (a reconnecting EventSource sends Last-Event-ID, so nothing comes
// twice). On "end" it stops and asks the page to render itself again with the run's final
// state (dashboard.js). Without JavaScript the page keeps the rendered output and a Reload link.
"use strict";

(function () {
  const output = document.getElementById("live-output");
  if (!output || !output.dataset.logs || !window.EventSource) {
    return;
  }
  let fresh = true;
  const source = new EventSource(output.dataset.logs);

  source.addEventListener("output", function (event) {
    const following = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
    if (fresh) {
      output.textContent = "";
      fresh = false;
    }
    output.append(event.data);
    output.dataset.received = String(Number(output.dataset.received || 0) + 1);
    if (following) {
      output.scrollTop = output.scrollHeight; // keep the newest line in view, as a terminal does
    }
  });

  function ended() {
    source.close();
    output.dataset.ended = "true";
    document.dispatchEvent(new Event("gitopsd:refresh"));
  }

  source.addEventListener("end", ended);
  // a run that ended before the stream opened answers plain text, which EventSource gives up
  // on: the page renders itself again, with the stored output
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) {
      ended();
    }
  });
})();
