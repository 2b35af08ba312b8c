// Plain chat page: sends messages to /api/messages and renders the replies.
// Text is always inserted as text (never as HTML); links are made clickable.
(function () {
  "use strict";
  var log = document.getElementById("log");
  var form = document.getElementById("composer");
  var input = document.getElementById("message");
  var URL_PATTERN = /(https?:\/\/[^\s<>"]+)/g;

  function appendText(parent, text) {
    var last = 0;
    text.replace(URL_PATTERN, function (url, _m, offset) {
      parent.appendChild(document.createTextNode(text.slice(last, offset)));
      var a = document.createElement("a");
      a.href = url; a.textContent = url; a.target = "_blank"; a.rel = "noopener noreferrer";
      parent.appendChild(a);
      last = offset + url.length;
      return url;
    });
    parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function addMessage(kind, text, image) {
    var item = document.createElement("li");
    item.className = "msg msg--" + kind;
    if (text) { appendText(item, text); }
    if (image) {
      var img = document.createElement("img");
      img.src = image; img.alt = "";
      item.appendChild(img);
    }
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
    return item;
  }

  function addButtons(buttons) {
    var row = document.createElement("li");
    row.className = "buttons";
    buttons.forEach(function (b) {
      var button = document.createElement("button");
      button.type = "button";
      button.textContent = b.title;
      button.addEventListener("click", function () {
        Array.prototype.forEach.call(row.querySelectorAll("button"), function (x) { x.disabled = true; });
        send(b.payload, b.title);
      });
      row.appendChild(button);
    });
    log.appendChild(row);
    log.scrollTop = log.scrollHeight;
  }

  function send(message, shownAs) {
    addMessage("user", shownAs || message);
    return fetch("/api/messages", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ message: message })
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (result) {
      if (!result.ok) { addMessage("error", result.body.error || "Something went wrong."); return; }
      result.body.messages.forEach(function (m) {
        if (m.text || m.image) { addMessage("bot", m.text, m.image); }
        if (m.buttons && m.buttons.length) { addButtons(m.buttons); }
      });
    }).catch(function () {
      addMessage("error", "The assistant is not available right now. Please try again in a moment.");
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    input.value = "";
    send(text);
  });
  input.focus();
})();
