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

  // Modals loaded by htmx into #modal: Cancel, Escape or a click on the backdrop closes them.
  // Without JavaScript the Cancel link simply goes back to the page.
  function closeModal(modal) { modal.remove(); }
  document.addEventListener("click", function (event) {
    var modal = event.target.closest("[data-modal]");
    if (!modal) return;
    if (event.target === modal || event.target.closest("[data-close-modal]")) {
      event.preventDefault();
      closeModal(modal);
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("[data-modal]").forEach(closeModal);
  });
  // Focus the first field of a freshly opened modal.
  document.addEventListener("htmx:afterSettle", function (event) {
    var target = event.detail && event.detail.target;
    if (!target || target.id !== "modal") return;
    var field = target.querySelector("input:not([type=hidden]), select, textarea, button");
    if (field) field.focus();
  });

  // Invite form: choosing a project role for a project ticks that project.
  document.addEventListener("change", function (event) {
    var select = event.target.closest(".project-grant select");
    if (!select) return;
    var box = select.closest(".project-grant").querySelector("input[type=checkbox]");
    if (box) box.checked = true;
  });

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
