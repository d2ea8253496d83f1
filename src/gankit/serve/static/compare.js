// Compare: the newest metrics of several runs side by side, one metric over training, grids.
import { api, badge, el, fileUrl, fmt, header, lineChart, query, runUrl, showError } from "./common.js";

header("compare");
const $ = (id) => document.getElementById(id);
let runs = [];
let directions = {};  // metric -> true when lower is better
const histories = new Map();  // run id -> metric records

function chosen() {
  return [...document.querySelectorAll("#choices input:checked")].map((box) => runs.find((r) => r.id === box.value));
}

function metricNames(selected) {
  const names = [];
  for (const run of selected) for (const name of Object.keys(run.metrics)) if (!names.includes(name)) names.push(name);
  return names;
}

function bestOf(name, selected) {
  const values = selected.map((r) => r.metrics[name]?.value).filter(Number.isFinite);
  if (values.length < 2) return null;
  return directions[name] === false ? Math.max(...values) : Math.min(...values);
}

function table(selected) {
  const names = metricNames(selected);
  const head = el("tr", {}, el("th", {}, ""), selected.map((r) => el("th", {}, el("a", { href: runUrl("run", r.id) }, r.id))));
  const line = (label, cell) => el("tr", {}, el("th", {}, label), selected.map((r) => cell(r)));
  const rows = [
    line("family", (r) => el("td", {}, r.family)),
    line("data", (r) => el("td", {}, `${r.dataset}${r.resolution ? ` ${r.resolution}px` : ""}`)),
    line("status", (r) => el("td", {}, badge(r.status))),
    line("step", (r) => el("td", { class: "num" }, `${r.step.toLocaleString("en")} / ${r.steps ? r.steps.toLocaleString("en") : "?"}`)),
    line("images / s", (r) => el("td", { class: "num" }, fmt(r.images_per_s))),
    ...names.map((name) => {
      const best = bestOf(name, selected);
      const better = directions[name] === false ? "higher is better" : "lower is better";
      return line(`${name} (${better})`, (r) => {
        const m = r.metrics[name];
        if (!m) return el("td", { class: "num muted" }, "–");
        return el("td", { class: `num${m.value === best ? " best" : ""}`, "data-metric": name },
          fmt(m.value, 4), m.std ? ` ± ${fmt(m.std, 2)}` : "",
          el("div", { class: "muted small" }, `${m.n ? `n=${m.n.toLocaleString("en")}, ` : ""}step ${m.step ?? "?"}`));
      });
    }),
  ];
  if (!names.length) rows.push(el("tr", {}, el("td", { colspan: selected.length + 1, class: "muted" },
    "none of these runs has metrics yet (eval.metrics while training, or gankit eval RUN)")));
  return el("table", { id: "compare-table" }, el("thead", {}, head), el("tbody", {}, rows));
}

async function metricHistory(id) {
  if (!histories.has(id)) histories.set(id, (await api(`/api/run?run=${encodeURIComponent(id)}`)).metrics);
  return histories.get(id);
}

async function chart(selected) {
  const metric = $("metric").value;
  if (!metric) { $("chart").replaceChildren(); return; }
  const series = [];
  for (const run of selected) {
    const points = (await metricHistory(run.id)).filter((r) => r.metric === metric && Number.isFinite(r.value))
      .map((r) => [r.step, r.value]);
    if (points.length) series.push({ name: run.id, points });
  }
  $("chart").replaceChildren(lineChart(metric, series));
}

async function render() {
  const selected = chosen();
  const ids = selected.map((r) => r.id).join(",");
  window.history.replaceState(null, "", `/compare?runs=${encodeURIComponent(ids)}`);
  if (!selected.length) {
    $("table-box").replaceChildren(el("div", { class: "card empty" }, "Tick the runs to compare."));
  } else {
    $("table-box").replaceChildren(table(selected));
  }
  const names = metricNames(selected);
  const current = $("metric").value;
  $("metric").replaceChildren(...names.map((n) => el("option", { value: n, selected: n === current }, n)));
  $("grids").replaceChildren(...selected.filter((r) => r.sample).map((r) => el("div", { class: "card" },
    el("div", { class: "small" }, el("b", {}, r.id)),
    el("img", { class: "grid-img pixelated", width: 200, src: fileUrl(r.sample, r.sample_version), alt: r.id }))));
  await chart(selected);
}

async function start() {
  try {
    const [config, data] = await Promise.all([api("/api/config"), api("/api/runs")]);
    directions = config.lower_is_better || {};
    runs = data.runs;
    const wanted = (query("runs") || "").split(",").filter(Boolean);
    const preset = wanted.length ? wanted : runs.filter((r) => Object.keys(r.metrics).length).map((r) => r.id);
    $("choices").replaceChildren(...runs.map((r) => el("label", {},
      el("input", { type: "checkbox", value: r.id, checked: preset.includes(r.id), onchange: () => render().catch((e) => showError("error", e)) }),
      r.id, el("span", { class: "muted small" }, r.family))));
    await render();
  } catch (error) {
    showError("error", error);
  }
}

$("metric").addEventListener("change", () => chart(chosen()).catch((e) => showError("error", e)));
start();
