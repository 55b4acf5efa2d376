/* The customer's tracking page: turn on Web Push for this phone. The tracking token in the page is what
   authorises the subscription (customers have no account); the server ties it to that customer.
   Loaded only on /track/<token>; without JavaScript or Push support the button stays hidden and
   e-mail or SMS keep the customer informed. */
(function () {
  "use strict";

  function applicationServerKey(base64) {
    var padded = (base64 + "===".slice((base64.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(padded);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["x-csrftoken"] || "";
    } catch (e) {
      return "";
    }
  }

  function init() {
    var button = document.getElementById("track-push");
    var status = document.getElementById("track-push-status");
    if (!button || !status || button.dataset.ready) return;
    button.dataset.ready = "1";
    if (!("serviceWorker" in navigator) || !("PushManager" in window) || !button.dataset.vapidPublicKey) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      button.disabled = true;
      Promise.resolve(window.Notification && Notification.requestPermission ? Notification.requestPermission() : "granted")
        .then(function (permission) {
          if (permission === "denied") throw new Error("denied");
          return navigator.serviceWorker.ready;
        })
        .then(function (registration) {
          return registration.pushManager.subscribe({
            userVisibleOnly: true,
            applicationServerKey: applicationServerKey(button.dataset.vapidPublicKey)
          });
        })
        .then(function (subscription) {
          var body = subscription.toJSON ? subscription.toJSON() : subscription;
          body.tracking_token = button.dataset.trackingToken;
          return fetch("/api/v1/push/subscriptions", {
            method: "POST",
            credentials: "same-origin",
            headers: { "Content-Type": "application/json", "x-csrftoken": csrfToken() },
            body: JSON.stringify(body)
          });
        })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          status.textContent = status.dataset.msgOn;
          button.hidden = true;
        })
        .catch(function (error) {
          status.textContent = error && error.message === "denied" ? status.dataset.msgDenied : status.dataset.msgFailed;
          button.disabled = false;
        });
    });
  }

  document.addEventListener("DOMContentLoaded", init);
})();
