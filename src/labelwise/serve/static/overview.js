// labelwise review overview: GET /v1/review/status drawn as figures and a table per label.
"use strict";

(function () {
  const SHOWN = 500;            // label rows drawn (the filter finds the others)
  const REFRESH_MS = 30000;

  const {$, el, showError, api} = window.labelwise;
  const state = {status: null};
  const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)} %`);
  const num = (x) => Number(x).toLocaleString("en");

  function drawFigures(st) {
    const dl = $("figures");
    dl.replaceChildren();
    const figs = [["items", "Items", st.items], ["queued", "Queued for people", st.queued],
                  ["audits", "of which audits", st.awaiting_audit],
                  ["auto", "Auto-accepted", st.auto_accepted], ["reviewed", "Reviewed", st.reviewed],
                  ["target", "Precision target", st.target === null ? "–" : pct(st.target)]];
    for (const [key, name, value] of figs) {
      dl.append(el("div", {class: "figure", "data-figure": key},
                   el("dt", {text: name}),
                   el("dd", {text: typeof value === "number" ? num(value) : value})));
    }
    const a = st.audited_precision;
    $("overall").textContent = a === null ? "No audit reviewed yet."
      : `Audited precision over all labels: ${pct(a.precision)} ` +
        `[${pct(a.interval[0])}, ${pct(a.interval[1])}] from ${num(a.audited)} audited labels` +
        (st.target === null ? "." : a.interval[1] < st.target ? " — below the target."
          : a.interval[0] >= st.target ? " — above the target." : " — the interval holds the target.");
  }

  function intervalCell(r, target) {
    if (!r.interval) return el("td", {class: "none", text: "no audits"});
    const [lo, hi] = r.interval;
    const box = el("span", {class: "ci", role: "img",
                            "aria-label": `from ${pct(lo)} to ${pct(hi)}`});
    const band = el("span", {class: "ci-band"});
    band.style.left = `${100 * lo}%`;
    band.style.width = `${Math.max(100 * (hi - lo), 0.5)}%`;
    box.append(band);
    if (target !== null) {
      const t = el("span", {class: "ci-target"});
      t.style.left = `${100 * target}%`;
      box.append(t);
    }
    return el("td", {}, box, el("span", {class: "ci-text", text: ` ${pct(lo)} – ${pct(hi)}`}));
  }

  function drawLabels() {
    const st = state.status;
    if (!st) return;
    const q = $("filter").value.trim().toLowerCase();
    const rows = st.labels.filter((r) => !q || r.label.toLowerCase().includes(q));
    rows.sort((a, b) => (b.paused - a.paused) || (b.audited - a.audited) ||
                        (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
    const body = $("label-table").tBodies[0];
    body.replaceChildren();
    for (const r of rows.slice(0, SHOWN)) {
      const tr = el("tr", {"data-label": r.label, class: r.paused ? "paused" : null},
        el("td", {class: "label", text: r.label}),
        el("td", {class: "n", text: num(r.auto_accepted)}),
        el("td", {class: "n", text: num(r.queued)}),
        el("td", {class: "n", text: num(r.reviewed)}),
        el("td", {class: "n", text: r.audited ? `${num(r.audited_correct)}/${num(r.audited)}` : "0"}),
        el("td", {class: "n precision", text: pct(r.audited_precision)}),
        intervalCell(r, st.target),
        el("td", {class: "state", text: r.paused ? "paused" : "on"}));
      body.append(tr);
    }
    const paused = st.labels.filter((r) => r.paused).length;
    $("label-count").textContent =
      `${num(Math.min(rows.length, SHOWN))} of ${num(rows.length)} label${rows.length === 1 ? "" : "s"}` +
      (q ? ` containing "${q}"` : "") + ` shown; ${num(paused)} paused.`;
  }

  async function load() {
    try {
      const data = await api("/v1/review/status");
      state.status = data;
      showError("");
      drawFigures(data);
      drawLabels();
      $("updated").textContent = `Updated ${new Date().toLocaleTimeString("en-GB")}.`;
    } catch (e) {
      showError(`The status could not be read: ${e.message}`);
    }
  }

  $("refresh").addEventListener("click", load);
  $("filter").addEventListener("input", drawLabels);
  load();
  setInterval(load, REFRESH_MS);
})();
