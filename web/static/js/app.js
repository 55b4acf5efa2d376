/*
 * Forecourt — progressive enhancement for the server-rendered pages.
 *
 * Loaded with `defer` right after htmx. Every page works without this file;
 * it only adds conveniences. Plain ES2017, no build step, and no inline
 * script or style anywhere (the CSP is `script-src 'self'`).
 *
 * Localised strings come from data attributes on <body>, rendered by the
 * server in the user's language:
 *   data-msg-offline  toast text when a request cannot reach the server
 *   data-msg-close    accessible label of a toast's close button (optional)
 */
(function () {
  'use strict';

  var TOAST_TTL_MS = 6000;       // toasts disappear after this long...
  var TOAST_LEAVE_MS = 200;      // ...after a fade as long as the CSS transition
  var TOAST_KINDS = ['error', 'success', 'info'];

  // CSS uses `html.js` to hide the no-JS fallbacks (.js-hidden).
  document.documentElement.classList.add('js');

  // htmx would inject its own indicator <style>, which the CSP blocks; app.css
  // defines .htmx-indicator instead. This runs before DOMContentLoaded (both
  // scripts are deferred), i.e. before htmx initialises; a
  // <meta name="htmx-config"> can still override it.
  if (window.htmx && window.htmx.config) {
    window.htmx.config.includeIndicatorStyles = false;
  }

  /* Service worker ------------------------------------------------------ */

  if ('serviceWorker' in navigator) {
    // After load, so registering does not compete with the page's own requests.
    window.addEventListener('load', function () {
      navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch(function (err) {
        // Not fatal: the site works without it (no offline page, no push).
        if (window.console) console.warn('Service worker registration failed:', err);
      });
    });
  }

  /* Language switch ----------------------------------------------------- */

  // Without JS the user picks a language and presses the submit button; with
  // JS the button is hidden and changing the select submits the form.
  function hideLangSubmit(root) {
    var buttons = root.querySelectorAll('form.lang-switch .lang-switch__submit');
    for (var i = 0; i < buttons.length; i++) buttons[i].classList.add('js-hidden');
  }

  document.addEventListener('change', function (event) {
    var select = event.target;
    if (!(select instanceof HTMLSelectElement)) return;
    var form = select.closest('form.lang-switch');
    if (!form) return;
    // requestSubmit() fires a submit event (so htmx or validation can see it);
    // submit() is the fallback for older browsers.
    if (typeof form.requestSubmit === 'function') form.requestSubmit();
    else form.submit();
  });

  /* Toasts -------------------------------------------------------------- */

  function toastContainer() {
    var container = document.getElementById('toasts');
    if (!container) {
      // The base template should render #toasts; create one if it did not.
      container = document.createElement('div');
      container.id = 'toasts';
      container.setAttribute('aria-live', 'polite');
      document.body.appendChild(container);
      watchToasts();
    }
    return container;
  }

  function dismissToast(toast) {
    if (!toast || toast.classList.contains('toast--leaving')) return;
    clearTimeout(toast._forecourtTimer);
    toast.classList.add('toast--leaving');
    setTimeout(function () {
      if (toast.parentNode) toast.parentNode.removeChild(toast);
    }, TOAST_LEAVE_MS);
  }

  function startTimer(toast) {
    clearTimeout(toast._forecourtTimer);
    toast._forecourtTimer = setTimeout(function () { dismissToast(toast); }, TOAST_TTL_MS);
  }

  // Give a toast (created here or rendered by the server) its auto-dismiss
  // timer. The timer pauses while the pointer or keyboard focus is on the
  // toast, so nobody loses a message they are reading or about to close.
  function armToast(toast) {
    if (toast._forecourtArmed) return;
    toast._forecourtArmed = true;
    startTimer(toast);
    toast.addEventListener('mouseenter', function () { clearTimeout(toast._forecourtTimer); });
    toast.addEventListener('mouseleave', function () { startTimer(toast); });
    toast.addEventListener('focusin', function () { clearTimeout(toast._forecourtTimer); });
    toast.addEventListener('focusout', function () { startTimer(toast); });
  }

  function armToastsIn(root) {
    if (!root || !root.querySelectorAll) return;
    if (root.matches && root.matches('#toasts .toast')) armToast(root);
    var toasts = root.querySelectorAll('.toast');
    for (var i = 0; i < toasts.length; i++) {
      if (toasts[i].closest('#toasts')) armToast(toasts[i]);
    }
  }

  /**
   * Show a toast. `kind` is 'error', 'success' or 'info' (the default).
   * The message is always inserted as text, never as HTML.
   */
  function showToast(message, kind) {
    if (TOAST_KINDS.indexOf(kind) === -1) kind = 'info';

    var toast = document.createElement('div');
    toast.className = 'toast toast--' + kind;
    toast.setAttribute('role', 'status');

    var text = document.createElement('span');
    text.textContent = String(message);

    var close = document.createElement('button');
    close.type = 'button';
    close.className = 'toast__close';
    close.setAttribute('aria-label', document.body.dataset.msgClose || 'Close');
    close.textContent = '\u00d7'; // ×

    toast.appendChild(text);
    toast.appendChild(close);
    toastContainer().appendChild(toast);
    armToast(toast);
    return toast;
  }

  // One listener for every close button, including ones in server-rendered
  // toasts that arrive later.
  document.addEventListener('click', function (event) {
    var button = event.target instanceof Element ? event.target.closest('.toast__close') : null;
    if (button) dismissToast(button.closest('.toast'));
  });

  // Server-rendered toasts reach #toasts through htmx (usually an
  // out-of-band swap). A MutationObserver catches them however they arrive;
  // it is re-attached if #toasts itself gets replaced (see htmx:load below).
  var observedContainer = null;
  var observer = 'MutationObserver' in window ? new MutationObserver(function (records) {
    for (var i = 0; i < records.length; i++) {
      var added = records[i].addedNodes;
      for (var j = 0; j < added.length; j++) {
        if (added[j].nodeType === 1) armToastsIn(added[j]);
      }
    }
  }) : null;

  function watchToasts() {
    var container = document.getElementById('toasts');
    if (!container || container === observedContainer) return;
    if (observer) {
      observer.disconnect();
      observer.observe(container, { childList: true });
    }
    observedContainer = container;
    armToastsIn(container); // toasts rendered with the page itself
  }

  /* htmx integration ---------------------------------------------------- */

  // htmx:load fires for every piece of content htmx swaps in.
  document.addEventListener('htmx:load', function (event) {
    watchToasts();
    armToastsIn(event.target);
    if (event.target instanceof Element) hideLangSubmit(event.target);
  });

  // The request never got an answer (network gone, or too slow). Tell the
  // user in their language; don't stack copies when several requests fail.
  function offlineToast() {
    var message = document.body.dataset.msgOffline || 'No connection. Please try again.';
    var existing = document.querySelectorAll('#toasts .toast--error:not(.toast--leaving) > span');
    for (var i = 0; i < existing.length; i++) {
      if (existing[i].textContent === message) {
        startTimer(existing[i].parentNode); // keep the one already showing
        return;
      }
    }
    showToast(message, 'error');
  }

  document.addEventListener('htmx:sendError', offlineToast);
  document.addEventListener('htmx:timeout', offlineToast);
  // htmx:responseError is deliberately not handled: the server answers errors
  // with toast fragments of its own.

  /* Start --------------------------------------------------------------- */

  hideLangSubmit(document);
  watchToasts();

  window.Forecourt = { showToast: showToast };
})();
