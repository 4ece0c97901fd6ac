// labelwise reviewer page: plain JS, no framework; talks to /v1/review/* of `labelwise serve`.
// One item at a time: its suggested labels as toggles (digits), labels added by typing their
// name (server-side search: GET /v1/review/labels), Enter submits, S skips, U undoes the last
// submission. Audit items start with no label on (a blind check of the auto-accepted labels);
// other items start with the suggestions of probability >= 0.5 on.
"use strict";

(function () {
  const PRESELECT = 0.5;        // queued items: suggestions at least this likely start on
  const OPTIONS = 8;            // labels shown under the add box
  const STATUS_EVERY_MS = 3000; // the queue figures are refreshed at most this often

  const {$, el, setStatus, showError} = window.labelwise;
  const state = {reviewer: "", token: "", order: "uncertainty", item: null, on: [], added: [],
                 shownAt: 0, undo: [], busy: false, mine: 0, since: 0, statusAt: 0,
                 options: [], active: -1, optionsFor: null, seq: 0};

  const api = (path, body) => window.labelwise.api(path, body, state.token);

  const enc = encodeURIComponent;
  const fmt = (p) => Number(p).toFixed(3);

  // ------------------------------------------------------------------ progress
  function showMine() {
    let text = `You: ${state.mine} submitted this session`;
    if (state.mine > 0 && state.since) {
      const hours = Math.max((Date.now() - state.since) / 3.6e6, 1 / 3600);
      text += ` · ${Math.round(state.mine / hours).toLocaleString("en")} items per hour`;
    }
    $("my-progress").textContent = text;
  }

  let statusTimer = null;

  async function refreshStatus(force) {
    const now = Date.now();
    if (!force && now - state.statusAt < STATUS_EVERY_MS) {
      // throttled: one refresh when the interval is over, so the figures end up current
      if (!statusTimer) {
        statusTimer = setTimeout(() => { statusTimer = null; refreshStatus(true); },
                                 STATUS_EVERY_MS - (now - state.statusAt));
      }
      return;
    }
    clearTimeout(statusTimer);
    statusTimer = null;
    state.statusAt = now;
    try {
      const st = await api("/v1/review/status");
      const done = st.reviewed + st.auto_accepted;
      $("queue-progress").textContent =
        `Queue: ${st.queued.toLocaleString("en")} waiting (${st.awaiting_audit} audits) · ` +
        `${done.toLocaleString("en")} of ${st.items.toLocaleString("en")} items decided ` +
        `(${st.reviewed.toLocaleString("en")} reviewed, ` +
        `${st.auto_accepted.toLocaleString("en")} auto-accepted)`;
    } catch (e) {
      $("queue-progress").textContent = `Queue figures unavailable: ${e.message}`;
    }
  }

  // ------------------------------------------------------------------ the item
  function show(item, undone) {
    state.item = item;
    const sugg = item.suggestions;
    if (undone) {
      const keep = new Set(undone.accepted);
      state.on = sugg.map((s) => keep.has(s.label));
      state.added = [...undone.added];
    } else {
      state.on = sugg.map((s) => !item.audit && s.probability >= PRESELECT);
      state.added = [];
    }
    state.shownAt = Date.now();
    if (!state.since) state.since = state.shownAt;
    $("empty").hidden = true;
    $("item").hidden = false;
    $("item-title").textContent = `Item ${item.id}`;
    $("item-badge").hidden = !item.audit;
    $("item-text").textContent = item.text !== null && item.text !== undefined ? item.text
      : `(features: ${item.features_ref})`;
    $("add-label").value = "";
    closeOptions();
    $("add-hint").textContent = "";
    drawToggles();
    drawAdded();
    updateUndo();
    $("item").focus();
  }

  function showEmpty() {
    state.item = null;
    $("item").hidden = true;
    $("empty").hidden = false;
    updateUndo();
    $("again").focus();
  }

  function drawToggles() {
    const box = $("suggestions");
    box.replaceChildren();
    state.item.suggestions.forEach((s, i) => {
      const key = i < 9 ? String(i + 1) : (i === 9 ? "0" : null);
      const bar = el("span", {class: "bar"}, el("span", {}));
      bar.firstChild.style.width = `${(100 * s.probability).toFixed(1)}%`;
      const b = el("button", {type: "button", class: "toggle", "aria-pressed": String(state.on[i]),
                              "data-label": s.label, "data-index": String(i)},
        key ? el("kbd", {text: key}) : null,
        el("span", {class: "name", text: s.label}),
        bar,
        el("span", {class: "prob", text: fmt(s.probability)}));
      b.addEventListener("click", () => toggle(i));
      box.append(b);
    });
    if (!state.item.suggestions.length) box.append(el("p", {class: "none", text: "No suggestions."}));
  }

  function toggle(i) {
    if (!state.item || i >= state.on.length) return;
    state.on[i] = !state.on[i];
    const b = $("suggestions").querySelector(`[data-index="${i}"]`);
    if (b) b.setAttribute("aria-pressed", String(state.on[i]));
  }

  function drawAdded() {
    const ul = $("added");
    ul.replaceChildren();
    for (const name of state.added) {
      const rm = el("button", {type: "button", class: "remove", "aria-label": `Remove ${name}`,
                               text: "×"});
      rm.addEventListener("click", () => {
        state.added = state.added.filter((n) => n !== name);
        drawAdded();
      });
      ul.append(el("li", {class: "chip", "data-label": name}, `${name} `, rm));
    }
  }

  function updateUndo() {
    const none = state.undo.length === 0;
    $("undo").disabled = none;
    $("undo-empty").disabled = none;
  }

  // ------------------------------------------------------------------ actions
  async function act(fn) {
    if (state.busy) return;
    state.busy = true;
    showError("");
    try {
      await fn();
    } catch (e) {
      showError(e.message);
    } finally {
      state.busy = false;
    }
  }

  async function next() {
    const item = await api("/v1/review/next", {reviewer: state.reviewer, order: state.order});
    if (item) show(item); else showEmpty();
    refreshStatus(!item);
  }

  function start(ev) {
    if (ev) ev.preventDefault();
    const name = $("reviewer").value.trim();
    if (!name) {
      showError("Your name: required (it is stored with each review).");
      $("reviewer").focus();
      return;
    }
    state.reviewer = name;
    state.token = $("token").value.trim();
    state.order = $("order").value;
    try {
      localStorage.setItem("labelwise.reviewer", name);
      sessionStorage.setItem("labelwise.token", state.token);
    } catch (e) { /* storage off: nothing remembered */ }
    act(async () => {
      await next();
      setStatus(state.item ? `Reviewing as ${name}.` : "");
    });
  }

  function submit() {
    const it = state.item;
    if (!it) return;
    act(async () => {
      const sugg = it.suggestions.map((s) => s.label);
      const body = {reviewer: state.reviewer,
                    accepted: sugg.filter((_, i) => state.on[i]),
                    rejected: sugg.filter((_, i) => !state.on[i]),
                    added: [...state.added],
                    seconds: Math.min((Date.now() - state.shownAt) / 1000, 86400)};
      await api(`/v1/review/items/${enc(it.id)}/review`, body);
      state.undo.push(it.id);
      state.mine += 1;
      showMine();
      await next();
      setStatus(`Submitted item ${it.id}.`);  // after the next item is shown
    });
  }

  function skip() {
    const it = state.item;
    if (!it) return;
    act(async () => {
      const item = await api(`/v1/review/items/${enc(it.id)}/skip`,
                             {reviewer: state.reviewer, order: state.order});
      setStatus(`Skipped item ${it.id}.`);
      if (item) show(item); else showEmpty();
      refreshStatus(false);
    });
  }

  function undo() {
    if (!state.undo.length) return;
    const id = state.undo[state.undo.length - 1];
    act(async () => {
      try {
        const item = await api(`/v1/review/items/${enc(id)}/undo`, {reviewer: state.reviewer});
        state.undo.pop();
        state.mine -= 1;
        showMine();
        show(item, item.undone);
        setStatus(`Undid your review of item ${id}: it is back, as you left it.`);
        refreshStatus(false);
      } catch (e) {
        if (e.status === 404 || e.status === 409) {  // it can never be undone: forget it
          state.undo.pop();
          updateUndo();
        }
        throw e;
      }
    });
  }

  // ------------------------------------------------------------------ adding labels
  function closeOptions() {
    state.options = [];
    state.active = -1;
    state.optionsFor = null;
    $("add-options").replaceChildren();
    $("add-options").hidden = true;
    $("add-label").setAttribute("aria-expanded", "false");
    $("add-label").removeAttribute("aria-activedescendant");
  }

  function drawOptions(q, page) {
    const ul = $("add-options");
    ul.replaceChildren();
    state.options = page.labels;
    state.optionsFor = q;
    state.active = page.labels.length ? 0 : -1;
    page.labels.forEach((name, i) => {
      const li = el("li", {role: "option", id: `add-opt-${i}`, "data-label": name,
                           "aria-selected": String(i === state.active)});
      const at = name.toLowerCase().indexOf(q.toLowerCase());
      if (at >= 0 && q) {
        li.append(name.slice(0, at), el("mark", {text: name.slice(at, at + q.length)}),
                  name.slice(at + q.length));
      } else {
        li.textContent = name;
      }
      li.addEventListener("mousedown", (ev) => { ev.preventDefault(); addLabel(name); });
      ul.append(li);
    });
    ul.hidden = page.labels.length === 0;
    $("add-label").setAttribute("aria-expanded", String(!ul.hidden));
    moveActive(0);
    $("add-hint").textContent = page.total === 0 ? `No label contains "${q}".`
      : `${page.total.toLocaleString("en")} label${page.total === 1 ? "" : "s"} match; ` +
        "Enter adds the highlighted one.";
  }

  function moveActive(delta) {
    const n = state.options.length;
    if (!n) return;
    state.active = (state.active + delta + n) % n;
    const lis = $("add-options").children;
    for (let i = 0; i < lis.length; i++) lis[i].setAttribute("aria-selected", String(i === state.active));
    $("add-label").setAttribute("aria-activedescendant", `add-opt-${state.active}`);
  }

  async function search(q) {
    const seq = ++state.seq;
    const page = await api(`/v1/review/labels?q=${enc(q)}&limit=${OPTIONS}`);
    if (seq !== state.seq || $("add-label").value.trim() !== q) return null;  // stale answer
    drawOptions(q, page);
    return page;
  }

  function addLabel(name) {
    if (!state.item) return;
    const i = state.item.suggestions.findIndex((s) => s.label === name);
    if (i >= 0) {
      if (!state.on[i]) toggle(i);
      $("add-hint").textContent = `${name} is a suggestion: it is on.`;
    } else if (state.added.includes(name)) {
      $("add-hint").textContent = `${name} is added already.`;
    } else {
      state.added.push(name);
      drawAdded();
      $("add-hint").textContent = `Added ${name}.`;
    }
    $("add-label").value = "";
    closeOptions();
  }

  let searchTimer = null;

  function onAddInput() {
    clearTimeout(searchTimer);
    const q = $("add-label").value.trim();
    if (!q) { closeOptions(); return; }
    searchTimer = setTimeout(() => search(q).catch((e) => showError(e.message)), 100);
  }

  async function onAddKey(ev) {
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      moveActive(ev.key === "ArrowDown" ? 1 : -1);
    } else if (ev.key === "Escape") {
      ev.preventDefault();
      $("add-label").value = "";
      closeOptions();
      $("item").focus();
    } else if (ev.key === "Enter") {
      ev.preventDefault();
      const q = $("add-label").value.trim();
      if (!q) { submit(); return; }
      clearTimeout(searchTimer);
      let chosen = null;
      if (state.optionsFor === q && state.active >= 0) {
        chosen = state.options[state.active];
      } else {
        try {
          const page = await search(q);
          if (!page) return;
          chosen = page.labels.find((n) => n.toLowerCase() === q.toLowerCase()) || page.labels[0];
        } catch (e) { showError(e.message); return; }
      }
      if (chosen) addLabel(chosen);
    }
  }

  // ------------------------------------------------------------------ keys
  function onKey(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.defaultPrevented) return;
    const t = ev.target;
    if (t.matches && t.matches("input, textarea, select")) return;
    const k = ev.key;
    if (k === "u" || k === "U") { ev.preventDefault(); undo(); return; }
    if (!state.item) return;
    if (/^[0-9]$/.test(k)) {
      ev.preventDefault();
      toggle(k === "0" ? 9 : Number(k) - 1);
    } else if (k === "Enter") {
      if (t.tagName === "BUTTON" && !t.classList.contains("toggle")) return;  // its own action
      ev.preventDefault();
      submit();
    } else if (k === "s" || k === "S") {
      ev.preventDefault();
      skip();
    } else if (k === "/") {
      ev.preventDefault();
      $("add-label").focus();
    }
  }

  function init() {
    const p = $("progress");
    p.append(el("span", {id: "queue-progress"}), el("br", {}), el("span", {id: "my-progress"}));
    try {
      $("reviewer").value = localStorage.getItem("labelwise.reviewer") || "";
      $("token").value = sessionStorage.getItem("labelwise.token") || "";
    } catch (e) { /* storage off */ }
    $("who").addEventListener("submit", start);
    $("again").addEventListener("click", () => act(next));
    $("submit").addEventListener("click", submit);
    $("skip-item").addEventListener("click", skip);
    $("undo").addEventListener("click", undo);
    $("undo-empty").addEventListener("click", undo);
    $("add-label").addEventListener("input", onAddInput);
    $("add-label").addEventListener("keydown", onAddKey);
    $("add-label").addEventListener("blur", () => setTimeout(closeOptions, 150));
    document.addEventListener("keydown", onKey);
    showMine();
    refreshStatus(true);
  }

  init();
})();
