// Starts the rasa-webchat widget on the portal stand-in page (/widget).
// The portal token (from the demo sign-in here; from the portal itself in
// production) never goes in a URL (proxies log URLs): it is exchanged, in a
// POST body, for a one-time connect ticket that goes in the socket URL, and it
// is sent in customData, checked with every message. A refused ticket (used,
// e.g. on reconnection, or expired) is replaced by a fresh one. The
// conversation and the token are kept in sessionStorage: they survive a
// reload and end with the tab.
(function () {
  "use strict";
  var TOKEN_KEY = "portal_token";
  var USER_KEY = "portal_user";
  var WIDGET_SESSION_KEY = "chat_session"; // rasa-webchat's stored conversation
  var status = document.getElementById("widget-status");
  var signInAgain = "The chat could not connect: your sign-in is not valid any more. Please sign in again.";

  function showStatus(text, isError) {
    status.textContent = text;
    status.className = "portal__status" + (isError ? " portal__status--error" : "");
  }

  function signedInUser() {
    try { return JSON.parse(sessionStorage.getItem(USER_KEY)); } catch (e) { return null; }
  }

  function switchUser(token, user) {
    // A new identity starts a new conversation on screen as well.
    sessionStorage.removeItem(WIDGET_SESSION_KEY);
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      sessionStorage.setItem(USER_KEY, JSON.stringify(user));
    } else {
      sessionStorage.removeItem(TOKEN_KEY);
      sessionStorage.removeItem(USER_KEY);
    }
    window.location.reload();
  }

  function setUpDemoLogin(config, token) {
    if (!config.demoLogin) { return; }
    var section = document.getElementById("demo-login");
    var form = document.getElementById("demo-login-form");
    var logout = document.getElementById("demo-logout");
    section.hidden = false;
    logout.hidden = !token;
    logout.addEventListener("click", function () { switchUser(null, null); });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var body = { account_id: form.elements.account_id.value, email: form.elements.email.value };
      fetch("/widget/demo-login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify(body)
      }).then(function (response) {
        return response.json().then(function (reply) { return { ok: response.ok, reply: reply }; });
      }).then(function (result) {
        if (!result.ok) { showStatus(result.reply.error || "Sign-in failed.", true); return; }
        switchUser(result.reply.token, { account_id: result.reply.account_id, email: result.reply.email });
      }).catch(function () { showStatus("Sign-in failed. Please try again.", true); });
    });
  }

  function connectTicket(config, token) {
    return fetch(config.ticketUrl, {
      method: "POST",
      headers: { "Content-Type": "text/plain" },
      credentials: "omit",
      body: JSON.stringify({ token: token })
    }).then(function (response) {
      return response.json().then(function (reply) {
        if (!response.ok || !reply.ticket) { throw new Error(reply.error || "ticket refused"); }
        return reply.ticket;
      });
    });
  }

  function ticketUrl(config, ticket) {
    return config.socketUrl + "/?ticket=" + encodeURIComponent(ticket);
  }

  function startWidget(config, token, socketUrl) {
    var user = signedInUser();
    var ticketRetries = 0;
    document.getElementById("signed-in-as").textContent =
      token && user ? "Signed in as " + user.email : "Not signed in";
    window.WebChat.default({
      initPayload: "/greet",
      socketUrl: socketUrl,
      socketPath: config.socketPath,
      customData: token ? { token: token } : {},
      title: "Portal support",
      subtitle: token && user ? "Signed in as " + user.email : "Ask about your account",
      inputTextFieldHint: "Type your question…",
      params: { storage: "session" },
      mainColor: "#23395d",
      userBackgroundColor: "#23395d",
      userTextColor: "#ffffff",
      withRules: false,
      hideWhenNotConnected: false,
      customMessageDelay: function () { return 150; },
      onSocketEvent: {
        connect: function () {
          ticketRetries = 0;
          if (status.className.indexOf("error") >= 0) { showStatus(""); }
        },
        connect_error: function (error) {
          var socket = this;
          if (token && error && /ticket/.test(error.message || "") && ticketRetries < 3) {
            // The ticket was used (a reconnection) or expired: connect again with a new one.
            ticketRetries += 1;
            connectTicket(config, token).then(function (ticket) {
              socket.io.uri = ticketUrl(config, ticket);
              socket.disconnect();
              socket.connect();
            }).catch(function () { showStatus(signInAgain, true); });
            return;
          }
          var refused = error && /token|ticket/.test(error.message || "");
          showStatus(refused
            ? signInAgain
            : "The chat could not connect. Please try again in a moment.", true);
        }
      }
    }, document.getElementById("webchat"));
  }

  fetch("/widget/config", { credentials: "same-origin" })
    .then(function (response) { return response.json(); })
    .then(function (config) {
      var token = sessionStorage.getItem(TOKEN_KEY);
      setUpDemoLogin(config, token);
      if (!token) { startWidget(config, null, config.socketUrl); return; }
      connectTicket(config, token)
        .then(function (ticket) { startWidget(config, token, ticketUrl(config, ticket)); })
        .catch(function () {
          // The token was refused: the widget shows, but cannot connect as anyone.
          showStatus(signInAgain, true);
          startWidget(config, token, ticketUrl(config, "refused"));
        });
    })
    .catch(function () { showStatus("The chat is not available right now.", true); });
})();
