// Heliograph's small progressive enhancements. Every page works without this file.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // Ask before destructive actions: buttons with the class "danger" inside a form.
  for (const button of document.querySelectorAll("form button.danger")) {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.textContent.trim() + "?")) event.preventDefault();
    });
  }
  // Select the one-time token for copying.
  const token = document.getElementById("token");
  if (token) token.addEventListener("focus", () => token.select());
});
