// labelwise web page: plain JS, no framework, talks to the /v1 API of `labelwise serve`.
"use strict";

(function () {
  const CHUNK = 200;          // items per predict / explain request (the server allows 1,000)
  const CHUNK_BYTES = 2 << 20; // and about this many bytes of items (the server's body limit: 8 MiB)
  const SHOWN = 200;          // items drawn on the page (downloads hold them all)
  const LABEL_PAGE = 20;      // labels per search page
  const EXPLAINED_FAMILIES = ["OneVsRest", "LabelTree"];

  const {$, el, setStatus, showError, api} = window.labelwise;
  const state = {models: [], model: null, results: null, file: null, labelQuery: "",
                 labelOffset: 0, labelSeq: 0, running: false};

  // consecutive groups of at most CHUNK items and about CHUNK_BYTES (an item larger than that
  // goes alone: the server then says it is too large)
  function chunks(list, size) {
    const out = [];
    let cur = [], bytes = 0;
    for (const x of list) {
      const b = size(x);
      if (cur.length && (cur.length >= CHUNK || bytes + b > CHUNK_BYTES)) {
        out.push(cur); cur = []; bytes = 0;
      }
      cur.push(x); bytes += b;
    }
    if (cur.length) out.push(cur);
    return out;
  }

  function itemBytes(item) {
    return item.text !== undefined ? 3 * item.text.length + 64 : JSON.stringify(item).length;
  }

  function fmt(p) { return Number.isFinite(p) ? p.toFixed(3) : String(p); }

  // ------------------------------------------------------------------ models
  function explainable(info) {
    return !!info && info.featurizer === "Tfidf" && EXPLAINED_FAMILIES.includes(info.family);
  }

  function policySummary(policy) {
    if (!policy) return "no tuned policy: the model's default rule (score above its threshold)";
    const parts = [];
    for (const [k, v] of Object.entries(policy)) {
      if (k === "policy" || v === null || typeof v === "object") continue;
      parts.push(`${k.replace(/_/g, " ")} ${typeof v === "number" ? +v.toFixed(4) : v}`);
    }
    const name = policy.policy ? String(policy.policy) : "policy";
    return parts.length ? `${name} (${parts.join(", ")})` : name;
  }

  async function loadModels(attempt) {
    try {
      const data = await api("/v1/models");
      state.models = data.models || [];
    } catch (e) {
      showError(e.message);
      return;
    }
    if (!state.models.length && attempt < 30) {  // still loading at start-up
      setStatus("Waiting for the server to load its models...");
      setTimeout(() => loadModels(attempt + 1), 1000);
      return;
    }
    const select = $("model");
    select.replaceChildren();
    for (const m of state.models) {
      select.append(el("option", {value: m.name,
        text: `${m.name} (${m.family}, ${m.n_labels.toLocaleString("en")} labels)`}));
    }
    if (!state.models.length) {
      setStatus("This server holds no model.");
      return;
    }
    setStatus("");
    onModelChange();
  }

  function onModelChange() {
    const info = state.models.find((m) => m.name === $("model").value) || null;
    state.model = info;
    if (!info) return;
    $("model-info").textContent =
      `${info.family}${info.featurizer ? " on " + info.featurizer : ""}; input: ${info.input}; ` +
      `${info.n_labels.toLocaleString("en")} labels; ` +
      `${info.calibrated ? "calibrated probabilities" : "uncalibrated probabilities"}; ` +
      `version ${info.version.slice(0, 12)}`;
    const textual = info.input === "text";
    $("text-label").textContent = textual ? "Text to label, one item a line"
      : "Items as JSONL, one a line: {\"id\": ..., \"features\": {\"indices\": [...], \"values\": [...]}}";
    const canExplain = explainable(info);
    $("explain").disabled = !canExplain;
    $("explain-hint").textContent = canExplain
      ? "Each term's contribution is its tf-idf value times the label classifier's weight."
      : `No word explanations for this model (${info.family}${info.featurizer ? " on " + info.featurizer : ""}): ` +
        "they need a OneVsRest or LabelTree model on tf-idf features.";
    const precision = $("policy").querySelector('option[value="precision"]');
    precision.disabled = !info.calibrated;
    if (!info.calibrated && $("policy").value === "precision") $("policy").value = "threshold";
    onPolicyChange();
    state.labelQuery = null;
    searchLabels(true);
  }

  function onPolicyChange() {
    const kind = $("policy").value;
    const box = $("policy-value-box");
    box.hidden = !(kind === "threshold" || kind === "precision");
    $("policy-value-label").textContent = kind === "precision" ? "Precision target p" : "Threshold t";
    const info = state.model;
    const hints = {
      tuned: `The model's tuned policy: ${policySummary(info && info.policy)}.`,
      top_k: "Every one of the top k candidates is chosen.",
      threshold: "A candidate is chosen when its probability is at least t.",
      precision: "A candidate is chosen when its calibrated probability is at least p.",
    };
    $("policy-hint").textContent = hints[kind];
  }

  function policyValue() {
    const kind = $("policy").value;
    if (kind === "tuned" || kind === "top_k") return kind;
    const v = Number($("policy-value").value);
    if (!($("policy-value").value.trim()) || !Number.isFinite(v) || v < 0 || v > 1
        || (kind === "precision" && v === 0)) {
      throw new Error(`${kind === "precision" ? "Precision target" : "Threshold"}: expected a ` +
                      `number ${kind === "precision" ? "above 0" : "from 0"} to 1, got ` +
                      `"${$("policy-value").value}"`);
    }
    return {[kind]: v};
  }

  // ------------------------------------------------------------------ reading items
  function parseCSV(text, where) {
    const rows = [];
    let row = [], field = "", i = 0, quoted = false, line = 1, startLine = 1;
    while (i < text.length) {
      const c = text[i];
      if (quoted) {
        if (c === '"') {
          if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
          quoted = false; i += 1; continue;
        }
        if (c === "\n") line += 1;
        field += c; i += 1; continue;
      }
      if (c === '"' && field === "") { quoted = true; i += 1; continue; }
      if (c === ",") { row.push(field); field = ""; i += 1; continue; }
      if (c === "\r" && text[i + 1] === "\n") { i += 1; continue; }
      if (c === "\n") {
        row.push(field); rows.push({cells: row, line: startLine});
        row = []; field = ""; i += 1; line += 1; startLine = line; continue;
      }
      field += c; i += 1;
    }
    if (quoted) throw new Error(`${where}:${startLine}: a quoted field is never closed`);
    if (field !== "" || row.length) { row.push(field); rows.push({cells: row, line: startLine}); }
    return rows;
  }

  function readItems(text, name, textual) {
    const lower = name.toLowerCase();
    const kind = lower.endsWith(".csv") ? "csv"
      : (lower.endsWith(".jsonl") || lower.endsWith(".ndjson") || lower.endsWith(".json")) ? "jsonl"
      : lower.endsWith(".txt") ? "txt" : (textual ? "txt" : "jsonl");
    const items = [];
    const notes = [];
    let blank = 0;
    if (kind === "csv") {
      if (!textual) throw new Error(`${name}: a feature model reads JSONL items with "features", not CSV`);
      const rows = parseCSV(text, name).filter((r) => {
        const empty = r.cells.length === 1 && r.cells[0].trim() === "";
        if (empty) blank += 1;
        return !empty;
      });
      if (!rows.length) throw new Error(`${name}: the file is empty`);
      const header = rows[0].cells.map((h) => h.trim().toLowerCase());
      const t = header.indexOf("text"), idc = header.indexOf("id");
      if (t < 0) throw new Error(`${name}:${rows[0].line}: the header has no "text" column (found: ${header.join(", ")})`);
      for (const r of rows.slice(1)) {
        if (r.cells.length !== header.length) {
          throw new Error(`${name}:${r.line}: ${r.cells.length} fields, the header has ${header.length}`);
        }
        items.push({id: idc >= 0 ? r.cells[idc] : r.line, text: r.cells[t]});
      }
    } else {
      const lines = text.split(/\r?\n/);
      const ignored = new Set();
      lines.forEach((raw, n) => {
        const line = n + 1;
        if (raw.trim() === "") { if (n < lines.length - 1 || raw !== "") blank += 1; return; }
        if (kind === "txt") { items.push({id: line, text: raw}); return; }
        let obj;
        try { obj = JSON.parse(raw); } catch (e) {
          throw new Error(`${name}:${line}: not JSON (${e.message})`);
        }
        if (typeof obj === "string") {
          if (!textual) throw new Error(`${name}:${line}: a feature model needs {"features": ...}, got a text`);
          items.push({id: line, text: obj}); return;
        }
        if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
          throw new Error(`${name}:${line}: expected a JSON object with "text"${textual ? "" : ", \"features\" or \"vector\""}`);
        }
        const item = {id: obj.id === undefined || obj.id === null ? line : obj.id};
        const fields = textual ? ["text"] : ["features", "vector"];
        for (const f of fields) if (obj[f] !== undefined) item[f] = obj[f];
        if (fields.every((f) => item[f] === undefined)) {
          throw new Error(`${name}:${line}: no ${fields.map((f) => `"${f}"`).join(" or ")} field`);
        }
        for (const k of Object.keys(obj)) if (k !== "id" && !fields.includes(k)) ignored.add(k);
        items.push(item);
      });
      if (ignored.size) notes.push(`fields not sent to the model: ${[...ignored].join(", ")}`);
    }
    if (blank) notes.push(`${blank} blank line${blank > 1 ? "s" : ""} skipped`);
    return {items, notes};
  }

  async function gatherItems() {
    const textual = !state.model || state.model.input === "text";
    if (state.file) {
      const text = await state.file.text();
      return readItems(text, state.file.name, textual);
    }
    return readItems($("text").value, "text box", textual);
  }

  // ------------------------------------------------------------------ running
  async function run() {
    if (state.running) return;
    showError("");
    const info = state.model;
    if (!info) { showError("Choose a model first."); return; }
    let policy, items, notes;
    const topK = Number($("top-k").value);
    try {
      if (!Number.isInteger(topK) || topK < 1 || topK > 1000) {
        throw new Error(`Candidates per item: expected a whole number from 1 to 1000, got "${$("top-k").value}"`);
      }
      policy = policyValue();
      ({items, notes} = await gatherItems());
      if (!items.length) throw new Error("No items: type a text (one item a line) or upload a file.");
    } catch (e) {
      showError(e.message);
      return;
    }
    state.running = true;
    $("run").disabled = true;
    const wantExplain = $("explain").checked && !$("explain").disabled;
    const out = [];
    let version = null;
    try {
      for (const chunk of chunks(items, itemBytes)) {
        const a = out.length;
        setStatus(`Labelling items ${a + 1}-${a + chunk.length} of ${items.length}...`);
        const resp = await api(`/v1/models/${encodeURIComponent(info.name)}/predict`,
                               {items: chunk, top_k: topK, policy});
        version = resp.version;
        resp.items.forEach((r, i) => out.push({input: chunk[i], result: r}));
      }
      if (wantExplain) {
        let a = 0;
        for (const chunk of chunks(out, (o) => itemBytes(o.input))) {
          setStatus(`Explaining items ${a + 1}-${a + chunk.length} of ${out.length}...`);
          a += chunk.length;
          const resp = await api(`/v1/models/${encodeURIComponent(info.name)}/explain`, {
            items: chunk.map((o) => ({text: o.input.text, labels: shownLabels(o.result)
                                        .map((c) => c.label).slice(0, 100)})),
            n_terms: 8});
          resp.items.forEach((r, i) => {
            chunk[i].explain = Object.fromEntries(r.labels.map((l) => [l.label, l]));
          });
        }
      }
    } catch (e) {
      showError(e.message);
      setStatus("");
      state.running = false;
      $("run").disabled = false;
      return;
    }
    state.results = {model: info.name, version, policy, topK, rows: out, explained: wantExplain};
    render();
    const extra = notes.length ? ` (${notes.join("; ")})` : "";
    setStatus(`Labelled ${out.length} item${out.length === 1 ? "" : "s"}${extra}.`);
    $("download-csv").disabled = false;
    $("download-jsonl").disabled = false;
    state.running = false;
    $("run").disabled = false;
    $("results").focus();
  }

  // the candidates, plus any chosen label outside them (a tuned policy chooses among the
  // tuning's top k, which can be more than the candidates asked for), by probability
  function shownLabels(r) {
    const listed = new Set(r.candidates.map((c) => c.label));
    const rows = r.candidates.map((c, i) => [c, i]);
    for (const l of r.labels) {
      if (!listed.has(l)) rows.push([{label: l, probability: r.probabilities[l]}, rows.length]);
    }
    return rows.sort((a, b) => (b[0].probability - a[0].probability) || (a[1] - b[1]))
      .map((x) => x[0]);
  }

  function render() {
    const res = state.results;
    const box = $("items");
    box.replaceChildren();
    const pol = typeof res.policy === "string" ? res.policy : JSON.stringify(res.policy);
    $("results-summary").textContent =
      `${res.rows.length} item${res.rows.length === 1 ? "" : "s"}; model ${res.model} ` +
      `(version ${String(res.version).slice(0, 12)}); policy ${pol}; top ${res.topK}` +
      (res.rows.length > SHOWN ? `; the first ${SHOWN} are shown, the downloads hold all` : "") + ".";
    res.rows.slice(0, SHOWN).forEach((row, n) => box.append(renderItem(row, n, res.explained)));
  }

  function renderItem(row, n, explained) {
    const r = row.result;
    const chosen = new Set(r.labels);
    const idText = r.id !== undefined && r.id !== null ? String(r.id) : String(n + 1);
    const art = el("article", {class: "item", "aria-labelledby": `item-h-${n}`});
    art.append(el("h3", {id: `item-h-${n}`, text: `Item ${idText}`}));
    const shown = row.input.text !== undefined ? row.input.text
      : JSON.stringify(row.input.features || row.input.vector);
    art.append(el("p", {class: "item-text", text: shown.length > 400 ? shown.slice(0, 400) + "..." : shown}));
    const chips = el("ul", {class: "chosen", "aria-label": "chosen labels"});
    if (r.labels.length) {
      for (const l of r.labels) chips.append(el("li", {class: "chip", text: `${l} ${fmt(r.probabilities[l])}`}));
    } else {
      chips.append(el("li", {class: "none", text: "no label chosen"}));
    }
    art.append(el("p", {class: "info", text: "Chosen:"}), chips);
    const table = el("table", {class: "cands"});
    table.append(el("caption", {class: "info", text: "Candidates by probability"}));
    const cols = el("colgroup", {}, el("col", {class: "c-label"}), el("col", {class: "c-bar"}),
                    el("col", {class: "c-num"}));
    if (explained) cols.append(el("col", {class: "c-terms"}));
    table.append(cols);
    const head = el("tr", {}, el("th", {scope: "col", text: "Label"}),
                    el("th", {scope: "col", text: "Probability"}),
                    el("th", {scope: "col", "aria-label": "probability value"}));
    if (explained) head.append(el("th", {scope: "col", text: "Words that pushed it up"}));
    table.append(el("thead", {}, head));
    const body = el("tbody");
    // drawn by probability (the API ranks by raw score, which per-label calibration can reorder)
    for (const c of shownLabels(r)) {
      const isChosen = chosen.has(c.label);
      const p = Math.max(0, Math.min(1, c.probability));
      const bar = el("div", {class: "bar", role: "img", "aria-label": `probability ${fmt(c.probability)}`},
                     el("span", {style: `width:${(p * 100).toFixed(1)}%`}));
      const tr = el("tr", {class: isChosen ? "is-chosen" : null},
        el("td", {class: "label", text: isChosen ? `\u2713 ${c.label}` : c.label,
                  title: isChosen ? "chosen" : null}),
        el("td", {}, bar),
        el("td", {class: "num", text: fmt(c.probability)}));
      if (explained) tr.append(el("td", {}, renderTerms(row.explain && row.explain[c.label])));
      body.append(tr);
    }
    table.append(body);
    art.append(table);
    return art;
  }

  function renderTerms(entry) {
    if (!entry) return el("span", {class: "none", text: "-"});
    if (!entry.terms) return el("span", {class: "none", text: entry.reason || "no term weights"});
    if (!entry.terms.length) return el("span", {class: "none", text: "no word pushed it up"});
    const ul = el("ul", {class: "terms"});
    for (const t of entry.terms) {
      ul.append(el("li", {class: "term"}, t.term + " ", el("small", {text: `+${t.contribution.toFixed(3)}`})));
    }
    return ul;
  }

  // ------------------------------------------------------------------ downloads
  function csvField(v) {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  }

  function toCSV(res) {
    const lines = [["id", "text", "labels", "probabilities", "candidates"]];
    if (res.explained) lines[0].push("terms");
    for (const row of res.rows) {
      const r = row.result;
      const line = [r.id, row.input.text !== undefined ? row.input.text : "", r.labels.join(";"),
                    r.labels.map((l) => r.probabilities[l]).join(";"),
                    r.candidates.map((c) => `${c.label}=${c.probability}`).join(";")];
      if (res.explained) {
        line.push(r.labels.map((l) => {
          const e = row.explain && row.explain[l];
          return `${l}: ${e && e.terms ? e.terms.map((t) => t.term).join(" ") : ""}`;
        }).join(" | "));
      }
      lines.push(line);
    }
    return lines.map((l) => l.map(csvField).join(",")).join("\r\n") + "\r\n";
  }

  function toJSONL(res) {
    return res.rows.map((row) => {
      const out = Object.assign({}, row.result);
      if (res.explained && row.explain) {
        out.explanations = Object.values(row.explain);
      }
      return JSON.stringify(out);
    }).join("\n") + "\n";
  }

  function download(kind) {
    const res = state.results;
    if (!res) return;
    const text = kind === "csv" ? toCSV(res) : toJSONL(res);
    const type = kind === "csv" ? "text/csv" : "application/x-ndjson";
    const url = URL.createObjectURL(new Blob([text], {type: `${type};charset=utf-8`}));
    const a = el("a", {href: url, download: `labelwise-${res.model}.${kind}`});
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 5000);
    const n = res.rows.length;
    setStatus(`Downloaded ${n} item${n === 1 ? "" : "s"} as ${kind.toUpperCase()}.`);
  }

  // ------------------------------------------------------------------ label search
  let searchTimer = null;

  function highlight(name, q) {
    const span = el("span", {class: "name"});
    const at = q ? name.toLowerCase().indexOf(q.toLowerCase()) : -1;
    if (at < 0) { span.textContent = name; return span; }
    span.append(name.slice(0, at), el("mark", {text: name.slice(at, at + q.length)}),
                name.slice(at + q.length));
    return span;
  }

  async function searchLabels(reset) {
    const info = state.model;
    if (!info) return;
    const q = $("label-search").value.trim();
    if (reset) { state.labelOffset = 0; $("label-results").replaceChildren(); }
    state.labelQuery = q;
    const seq = ++state.labelSeq;
    const params = new URLSearchParams({limit: String(LABEL_PAGE), offset: String(state.labelOffset)});
    if (q) params.set("q", q);
    let data;
    try {
      data = await api(`/v1/models/${encodeURIComponent(info.name)}/labels?${params}`);
    } catch (e) {
      if (seq === state.labelSeq) $("label-count").textContent = e.message;
      return;
    }
    if (seq !== state.labelSeq) return;  // a newer search answered or will answer
    const list = $("label-results");
    for (const l of data.labels) {
      const meta = [l.kind];
      if (l.examples !== null && l.examples !== undefined) {
        meta.push(`${l.examples} example${l.examples === 1 ? "" : "s"}`);
      }
      if (l.threshold !== null && l.threshold !== undefined) meta.push(`threshold ${fmt(l.threshold)}`);
      const li = el("li", {}, highlight(l.name, q), el("span", {class: "meta", text: meta.join(", ")}));
      if (l.description) li.append(el("div", {class: "info", text: l.description}));
      list.append(li);
    }
    state.labelOffset += data.labels.length;
    const shown = state.labelOffset;
    $("label-count").textContent = data.total === 0
      ? (q ? `No label contains "${q}".` : "The model has no labels.")
      : `${shown.toLocaleString("en")} of ${data.total.toLocaleString("en")} ` +
        (q ? `labels containing "${q}"` : "labels") + " shown.";
    $("label-more").hidden = shown >= data.total;
  }

  // ------------------------------------------------------------------ wiring
  document.addEventListener("DOMContentLoaded", () => {
    const form = $("run-form");
    form.addEventListener("submit", (ev) => { ev.preventDefault(); run(); });
    // Enter runs from any single-line control (selects and checkboxes included);
    // in the text box Ctrl+Enter (or Cmd+Enter) runs and Enter starts a new line.
    form.addEventListener("keydown", (ev) => {
      if (ev.key !== "Enter" || ev.isComposing) return;
      const t = ev.target;
      if (t.tagName === "TEXTAREA") {
        if (ev.ctrlKey || ev.metaKey) { ev.preventDefault(); run(); }
        return;
      }
      if (t.tagName === "BUTTON" || (t.tagName === "INPUT" && t.type === "file")) return;
      ev.preventDefault();
      run();
    });
    $("model").addEventListener("change", onModelChange);
    $("policy").addEventListener("change", onPolicyChange);
    $("file").addEventListener("change", () => {
      state.file = $("file").files[0] || null;
      $("clear-file").hidden = !state.file;
      setStatus(state.file ? `File chosen: ${state.file.name} (used instead of the text box).` : "");
    });
    $("clear-file").addEventListener("click", () => {
      $("file").value = "";
      state.file = null;
      $("clear-file").hidden = true;
      setStatus("File forgotten: the text box is used.");
      $("file").focus();
    });
    $("download-csv").addEventListener("click", () => download("csv"));
    $("download-jsonl").addEventListener("click", () => download("jsonl"));
    $("label-search").addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => searchLabels(true), 150);
    });
    $("label-search").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") { ev.preventDefault(); clearTimeout(searchTimer); searchLabels(true); }
    });
    $("label-more").addEventListener("click", () => searchLabels(false));
    loadModels(0);
  });
})();
