// labelwise pages' shared helpers (plain JS, no framework): element building, the error box
// and the /v1 API call with problem+json errors. Loaded before each page's own script.
"use strict";

window.labelwise = (function () {
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function setStatus(text) { $("status").textContent = text; }

  function showError(text) {
    $("error").textContent = text || "";
    $("error").hidden = !text;
  }

  // an API answer that was not 2xx (status 0: the server did not answer)
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  // GET path, or POST body as JSON when body is given; a bearer token when token is given.
  // Resolves to the parsed answer (null for 204); rejects with an ApiError naming the status,
  // the problem's title and its detail.
  async function api(path, body, token) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = {headers};
    if (body !== undefined) {
      init.method = "POST";
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, `${path}: the server did not answer (${e.message})`);
    }
    if (resp.status === 204) return null;
    const type = resp.headers.get("content-type") || "";
    const data = type.includes("json") ? await resp.json() : await resp.text();
    if (!resp.ok) {
      const detail = data && data.detail ? (typeof data.detail === "string" ? data.detail
        : JSON.stringify(data.detail)) : String(data).slice(0, 300);
      throw new ApiError(resp.status, `${resp.status} ${data && data.title ? data.title
        : resp.statusText}: ${detail}`);
    }
    return data;
  }

  return {$, el, setStatus, showError, ApiError, api};
})();
