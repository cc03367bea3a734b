// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  // Copy buttons: <button data-copy-target="#id">; falls back to selecting the text.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (!button) return;
    var field = document.querySelector(button.getAttribute("data-copy-target"));
    if (!field) return;
    var text = field.value !== undefined ? field.value : field.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { field.select && field.select(); });
    } else {
      if (field.select) { field.select(); }
      try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selected */ }
    }
  });

  // Toasts fade away after a while; a close button dismisses at once.
  function armToasts(root) {
    (root || document).querySelectorAll(".toast:not([data-armed])").forEach(function (toast) {
      toast.setAttribute("data-armed", "1");
      setTimeout(function () { toast.remove(); }, 6000);
    });
  }
  document.addEventListener("click", function (event) {
    var close = event.target.closest(".toast-close");
    if (close) close.closest(".toast").remove();
  });
  document.addEventListener("DOMContentLoaded", function () { armToasts(); });
  document.addEventListener("htmx:afterSettle", function () { armToasts(); });

  // Close <details> menus on outside click or Escape.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.menu[open]").forEach(function (menu) { menu.removeAttribute("open"); });
  });
})();
