// Heliograph's small progressive enhancements. Every page works without this file.
"use strict";

// Live regions: an element with data-live="name" and data-live-source="/events/url" listens to
// server-sent events; on each change the page is fetched again and every data-live region is
// replaced by its new version. Forms outside the regions (what you are typing) are untouched.
function startLiveRegions() {
  const sources = new Set();
  for (const el of document.querySelectorAll("[data-live][data-live-source]")) {
    sources.add(el.dataset.liveSource);
  }
  if (sources.size === 0 || !window.EventSource) return;
  let timer = null;
  const refresh = async () => {
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const el of document.querySelectorAll("[data-live]")) {
        const fresh = doc.querySelector('[data-live="' + el.dataset.live + '"]');
        if (fresh && !el.contains(document.activeElement)) {
          el.innerHTML = fresh.innerHTML;
          el.dataset.updated = String(Date.now());
        }
      }
      document.dispatchEvent(new CustomEvent("heliograph:updated"));
    } catch (e) {
      // Offline for a moment; the next event will try again.
    }
  };
  for (const url of sources) {
    const stream = new EventSource(url);
    stream.addEventListener("changed", () => {
      clearTimeout(timer);
      timer = setTimeout(refresh, 150);
    });
  }
}

function confirmDangerousButtons() {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("form button.danger");
    if (button && !window.confirm(button.textContent.trim() + "?")) event.preventDefault();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  confirmDangerousButtons();
  startLiveRegions();
  const token = document.getElementById("token");
  if (token) token.addEventListener("focus", () => token.select());
});
