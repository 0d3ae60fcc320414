// gitopsd dashboard: live updates. A page whose <main> has data-live="/events" listens for
// Server-Sent Events; on "changed" it fetches its own URL again and swaps in the new <main>,
// keeping keyboard focus where it was when the focused element still exists, the elements
// marked data-keep as they are, and every form the user has started to fill in (a choice
// made before an update is still there when they submit); a "gitopsd:refresh" event asks for
// it too. Without JavaScript the pages work the same, only without updating by themselves.
"use strict";

(function () {
  const main = document.getElementById("main");
  if (!main || !main.dataset.live || !window.EventSource) {
    return;
  }
  let fetching = false;
  let again = false;

  // someone typing in a form (a suspend reason, a chosen revision) keeps what they typed:
  // the page updates once they leave the field
  function busyTyping() {
    const active = document.activeElement;
    return active && main.contains(active) && active.matches("input, select, textarea");
  }

  async function refresh() {
    if (busyTyping()) {
      main.addEventListener("focusout", refresh, { once: true });
      return;
    }
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    try {
      const response = await fetch(window.location.href, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (response.ok) {
        swap(await response.text());
      }
    } finally {
      fetching = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  function swap(html) {
    const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("main");
    if (!fresh) {
      return;
    }
    const focused = document.activeElement && document.activeElement.id;
    // an element marked data-keep (a run's live output) stays as the page's script made it
    for (const kept of main.querySelectorAll("[data-keep][id]")) {
      const replaced = fresh.querySelector("#" + CSS.escape(kept.id));
      if (replaced) {
        replaced.replaceWith(kept);
      }
    }
    // a form the user changed stays as they left it, in place of its fresh rendering
    for (const touched of main.querySelectorAll("form[data-touched]")) {
      const same = `form[action="${CSS.escape(touched.getAttribute("action") || "")}"]`;
      const replaced = fresh.querySelector(same);
      if (replaced) {
        replaced.replaceWith(touched);
      }
    }
    main.replaceChildren(...fresh.childNodes);
    main.dataset.updated = String(Date.now());
    if (focused) {
      const again = document.getElementById(focused);
      if (again) {
        again.focus();
      }
    }
  }

  function touch(event) {
    const form = event.target.closest && event.target.closest("form");
    if (form) {
      form.dataset.touched = "";
    }
  }
  main.addEventListener("input", touch);
  main.addEventListener("change", touch);

  const source = new EventSource(main.dataset.live);
  source.addEventListener("changed", refresh);
  // another script of the page may ask for a fresh rendering (a run's output ended)
  document.addEventListener("gitopsd:refresh", refresh);
})();
