// The simulator page: sends messages as a phone and polls for the thread.
// Message text is only ever set with textContent, never parsed as HTML.
(function () {
  "use strict";
  const token = document.querySelector('meta[name="csrf-token"]').content;
  const chat = document.getElementById("chat");
  const error = document.getElementById("error");
  const phoneLabel = document.getElementById("phone");
  const bodyInput = document.getElementById("body");
  const shown = new Map();
  let timer = null;

  function render(message) {
    let item = shown.get(message.id);
    if (!item) {
      item = document.createElement("div");
      item.className = "msg " + (message.direction === "in" ? "in" : "out");
      item.dataset.id = message.id;
      item.appendChild(document.createElement("span"));
      item.appendChild(document.createElement("small"));
      chat.appendChild(item);
      shown.set(message.id, item);
      chat.scrollTop = chat.scrollHeight;
    }
    item.firstChild.textContent = message.body || "(empty)";
    item.lastChild.textContent = message.direction === "in" ? "you" : "bot · " + message.status;
  }

  async function poll() {
    try {
      const response = await fetch("messages", { cache: "no-store" });
      if (!response.ok) { error.textContent = "Could not load the conversation (" + response.status + ")."; return; }
      const data = await response.json();
      error.textContent = "";
      data.messages.forEach(render);
    } catch (e) {
      error.textContent = "The service is not reachable.";
    }
  }

  function open() {
    shown.clear();
    chat.replaceChildren();
    if (timer) { clearInterval(timer); }
    poll();
    timer = setInterval(poll, 1000);
  }

  document.getElementById("phone-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    const response = await fetch("phone", { method: "POST", headers: { "X-CSRF-Token": token } });
    if (!response.ok) { error.textContent = "Could not start over (" + response.status + ")."; return; }
    phoneLabel.textContent = (await response.json()).phone;
    open();
  });

  document.getElementById("send-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    const body = bodyInput.value;
    const response = await fetch("messages", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
      body: JSON.stringify({ body: body }),
    });
    if (!response.ok) {
      error.textContent = "Sending failed (" + response.status + ").";
      return;
    }
    bodyInput.value = "";
    poll();
  });

  open();
})();
