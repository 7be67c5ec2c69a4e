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

// Postmortem drafts: while you type, the edit form (data-draft-key) is copied into this
// browser's localStorage, so a closed tab or a crash does not lose text. Nothing is sent to the
// server. The copy keeps the version it was typed against, and restoring it puts that version
// back in the form, so Save is checked against other people's saves exactly as if the tab had
// never closed: if someone saved meanwhile, the save is refused and your text stays in the form.
// The copy is dropped once the form already shows the same text (after a save, say).
function keepPostmortemDrafts() {
  const form = document.querySelector("form[data-draft-key]");
  if (!form) return;
  let storage = null;
  try { storage = window.localStorage; } catch (e) { return; }
  if (!storage) return;
  const key = "heliograph:postmortem-draft:" + form.dataset.draftKey;
  const skip = new Set(["csrf", "version", "action"]);
  const fields = () => Array.from(form.elements)
    .filter((el) => el.name && !skip.has(el.name) && el.type !== "submit" && el.type !== "button");
  const snapshot = () => fields().map((el) => [el.name, el.type === "checkbox" ? el.checked : el.value]);
  const set = (el, value) => {
    if (el.type === "checkbox") el.checked = value === true; else el.value = String(value);
  };
  const version = form.elements.namedItem("version");
  let saved = null;
  try { saved = JSON.parse(storage.getItem(key) || "null"); } catch (e) { saved = null; }
  if (saved && (!Array.isArray(saved.fields) || JSON.stringify(saved.fields) === JSON.stringify(snapshot()))) {
    storage.removeItem(key);
    saved = null;
  }
  if (saved) {
    const note = document.createElement("p");
    note.className = "flash flash-preview";
    note.id = "draft-restore";
    note.setAttribute("role", "status");
    note.textContent = "This browser kept text you typed here on " + new Date(saved.at).toLocaleString() +
      " that was not saved. ";
    const restore = document.createElement("button");
    restore.type = "button";
    restore.id = "draft-restore-button";
    restore.textContent = "Restore my unsaved text";
    const discard = document.createElement("button");
    discard.type = "button";
    discard.id = "draft-discard-button";
    discard.textContent = "Discard it";
    restore.addEventListener("click", () => {
      const now = fields();
      const sameShape = now.length === saved.fields.length && now.every((el, i) => el.name === saved.fields[i][0]);
      if (sameShape) {
        now.forEach((el, i) => set(el, saved.fields[i][1]));
      } else {
        // The timeline changed shape since: restore the fields that have one name.
        for (const [name, value] of saved.fields) {
          const el = form.elements.namedItem(name);
          if (el && el.name === name) set(el, value);
        }
      }
      if (version && saved.version) version.value = saved.version;
      note.textContent = "Your unsaved text is back in the form, as typed against version " + saved.version +
        "; press Save to store it (if someone saved since, nothing is overwritten and your text stays here).";
    });
    discard.addEventListener("click", () => {
      storage.removeItem(key);
      note.remove();
    });
    note.append(restore, " ", discard);
    form.prepend(note);
  }
  let timer = null;
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      try {
        storage.setItem(key, JSON.stringify({ at: Date.now(), version: version ? version.value : null, fields: snapshot() }));
      } catch (e) {
        // Storage full or turned off: the form still works, without the copy.
      }
    }, 400);
  });
}

document.addEventListener("DOMContentLoaded", keepPostmortemDrafts);
