// Starts the rasa-webchat widget on the portal stand-in page (/widget).
// The portal token (from the demo sign-in here; from the portal itself in
// production) goes in the socket URL, checked when the socket connects, and in
// customData, checked with every message. The conversation and the token are
// kept in sessionStorage: they survive a reload and end with the tab.
(function () {
  "use strict";
  var TOKEN_KEY = "portal_token";
  var USER_KEY = "portal_user";
  var WIDGET_SESSION_KEY = "chat_session"; // rasa-webchat's stored conversation
  var status = document.getElementById("widget-status");

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

  function startWidget(config, token) {
    var user = signedInUser();
    document.getElementById("signed-in-as").textContent =
      token && user ? "Signed in as " + user.email : "Not signed in";
    var socketUrl = config.socketUrl + (token ? "/?token=" + encodeURIComponent(token) : "");
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
        connect: function () { if (status.className.indexOf("error") >= 0) { showStatus(""); } },
        connect_error: function (error) {
          var refused = error && /token/.test(error.message || "");
          showStatus(refused
            ? "The chat could not connect: your sign-in is not valid any more. Please sign in again."
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
      startWidget(config, token);
    })
    .catch(function () { showStatus("The chat is not available right now.", true); });
})();
