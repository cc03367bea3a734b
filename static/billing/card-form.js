// The card form (templates/billing/_card_form.html): Stripe.js confirms the SetupIntent with the card
// typed into Elements, then the SetupIntent id goes to our server, which charges or saves the card.
// The balance is never credited here: the server waits for Stripe's webhook.
(function () {
  "use strict";
  const form = document.getElementById("card-form");
  if (!form || typeof Stripe === "undefined") return;
  const stripe = Stripe(form.dataset.publishableKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");
  const button = document.getElementById("card-submit");
  const errorBox = document.getElementById("card-error");
  const processing = document.getElementById("card-processing");

  function fail(message) {
    errorBox.textContent = message || "The card could not be used.";
    errorBox.hidden = false;
    processing.hidden = true;
    button.disabled = false;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    errorBox.hidden = true;
    processing.hidden = false;
    button.disabled = true;
    const setup = await stripe.confirmCardSetup(form.dataset.clientSecret, { payment_method: { card: card } });
    if (setup.error) return fail(setup.error.message);
    const body = new FormData(form);
    body.set("setup_intent", setup.setupIntent.id);
    let data = null;
    try {
      const response = await fetch(form.action, { method: "POST", body: body, headers: { Accept: "application/json" } });
      data = await response.json();
    } catch (e) {
      window.location.reload(); // e.g. the password is asked again: the page says so
      return;
    }
    if (data.requires_action) {
      const action = await stripe.confirmCardPayment(data.requires_action);
      if (action.error) {
        fail(action.error.message);
        if (data.redirect) window.location.assign(data.redirect);
        return;
      }
    }
    if (data.error && !data.redirect) return fail(data.error);
    window.location.assign(data.redirect);
  });
})();
