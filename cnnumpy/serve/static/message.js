// message.js: the one visible line (#message) where every error is shown.

const bar = () => document.getElementById("message-bar");
const line = () => document.getElementById("message");

// kind: "error" (red) or "info" (neutral); the line stays until closed or replaced.
export function showMessage(text, kind = "error") {
  line().textContent = text;
  bar().dataset.kind = kind;
  bar().hidden = false;
}

export function clearMessage() {
  line().textContent = "";
  bar().hidden = true;
}

// "Predict: 400 ..." : where it happened, then what the server said.
export function reportError(where, error) {
  const text = error && error.message ? error.message : String(error);
  showMessage(`${where}: ${text}`, "error");
  console.error(where, error);
}

export function initMessage() {
  document.getElementById("message-close").addEventListener("click", clearMessage);
}
