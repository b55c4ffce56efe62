// api.js: the few ways the page talks to the server (see /tmp/serve/CONTRACT.md).
//
// Every answer is JSON. A failed request answers {"error": "..."} with a status
// of 400, 404, 409, 413 or 500; we turn it into an ApiError carrying that message,
// so that the caller can show it (never swallow it).

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0 when the server could not be reached at all
  }
}

// "/api/predict" + {run: "lenet", top: 5} -> "/api/predict?run=lenet&top=5"
// (values left out when undefined, null or "").
export function withQuery(path, params = {}) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") {
      search.set(key, String(value));
    }
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

async function send(path, options) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new ApiError(0, `cannot reach the server (${error.message})`);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's page, or a crash before the app answered
    throw new ApiError(
      response.status,
      `${response.status} ${response.statusText}: the server's answer is not JSON`,
    );
  }
  if (!response.ok) {
    const message = body && body.error ? body.error : `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return body;
}

export function getJson(path) {
  return send(path, { method: "GET", headers: { Accept: "application/json" } });
}

export function postJson(path, payload = {}) {
  return send(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(payload),
  });
}

// The image goes as the raw request body (PNG or JPEG bytes), not as a form.
export function postImage(path, blob) {
  return send(path, {
    method: "POST",
    headers: { "Content-Type": blob.type || "application/octet-stream" },
    body: blob,
  });
}
