/* Turn on Web Push for this browser: ask permission, subscribe with the server's VAPID key,
   send the subscription to the server. Loaded only on the "My notifications" page. */
(function () {
  "use strict";

  function urlBase64ToUint8Array(base64) {
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

  function say(status, key) {
    status.textContent = status.dataset[key] || status.textContent;
  }

  function init() {
    var button = document.getElementById("push-enable");
    var card = document.getElementById("push-card");
    var status = document.getElementById("push-status");
    if (!button || !card || button.dataset.ready) return;
    button.dataset.ready = "1";
    if (!("serviceWorker" in navigator) || !("PushManager" in window) || !card.dataset.vapidPublicKey) {
      say(status, "msgUnsupported");
      button.hidden = true;
      return;
    }
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
            applicationServerKey: urlBase64ToUint8Array(card.dataset.vapidPublicKey)
          });
        })
        .then(function (subscription) {
          return fetch("/api/v1/push/subscriptions", {
            method: "POST",
            credentials: "same-origin",
            headers: { "Content-Type": "application/json", "x-csrftoken": csrfToken() },
            body: JSON.stringify(subscription.toJSON ? subscription.toJSON() : subscription)
          });
        })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          say(status, "msgOn");
          card.dataset.subscribed = "true";
        })
        .catch(function (error) {
          say(status, error && error.message === "denied" ? "msgDenied" : "msgFailed");
          button.disabled = false;
        });
    });
  }

  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("htmx:load", init);
})();
