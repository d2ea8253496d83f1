// The live view of one run: loss and metric curves, the newest grid, images/s; polls while
// the run trains (the trainer knows nothing of this page: everything comes from its folder).
import { api, badge, duration, el, fileUrl, fmt, header, lineChart, progressBar, query, runUrl, showError }
  from "./common.js";

header("run");
const runId = query("run");
const POLL_RUNNING_MS = 2000, POLL_IDLE_MS = 10000;
let lastKey = null;

const HIDDEN_KEYS = new Set(["step", "images_per_s", "time", "skipped_steps"]);

/** Loss records -> chart groups: losses, then the other statistics (D outputs, accuracy, ...). */
function lossGroups(records) {
  const keys = [];
  for (const record of records) {
    for (const key of Object.keys(record)) if (!HIDDEN_KEYS.has(key) && !keys.includes(key)) keys.push(key);
  }
  const series = (names) => names.map((name) => ({
    name, points: records.filter((r) => name in r).map((r) => [r.step, Number(r[name])]),
  }));
  const losses = keys.filter((k) => k.startsWith("loss"));
  const others = keys.filter((k) => !k.startsWith("loss"));
  const groups = [];
  if (losses.length) groups.push(["losses", series(losses)]);
  if (others.length) groups.push(["discriminator outputs and other statistics", series(others)]);
  const speed = records.filter((r) => Number.isFinite(r.images_per_s));
  if (speed.length) groups.push(["images / s", [{ name: "images/s", points: speed.map((r) => [r.step, r.images_per_s]) }]]);
  return groups;
}

function metricGroups(records) {
  const byName = new Map();
  for (const r of records) {
    if (!Number.isFinite(r.value)) continue;
    if (!byName.has(r.metric)) byName.set(r.metric, []);
    byName.get(r.metric).push([r.step, r.value]);
  }
  return [...byName.entries()].map(([name, points]) => {
    const n = records.find((r) => r.metric === name && r.n_generated)?.n_generated;
    return [`${name}${n ? ` (n=${n.toLocaleString("en")})` : ""}`, [{ name, points }]];
  });
}

function stat(key, value) {
  return el("div", { class: "stat" }, el("div", { class: "k" }, key), el("div", { class: "v", "data-stat": key }, value));
}

function render(data) {
  const run = data.run;
  document.title = `gankit · ${run.id}`;
  document.getElementById("title").textContent = run.id;
  document.getElementById("badges").replaceChildren(badge(run.status), " ",
    el("span", { class: "muted" }, `${run.family} on ${run.dataset}${run.resolution ? `, ${run.resolution}px` : ""}`));
  const use = run.task === "translate" ? ["translate", "Translate with it"] : ["explore", "Explore the generator"];
  document.getElementById("links").replaceChildren(el("a", { href: runUrl(use[0], run.id) }, use[1]), " · ",
    el("a", { href: `/compare?runs=${encodeURIComponent(run.id)}` }, "Compare"), " · ",
    el("a", { href: fileUrl(`${run.id === "." ? "" : `${run.id}/`}log.txt`), target: "_blank" }, "log.txt"));
  const remaining = run.steps && run.images_per_s && data.config.train
    ? ((run.steps - run.step) * data.config.train.batch_size) / run.images_per_s : NaN;
  document.getElementById("stats").replaceChildren(
    stat("step", `${run.step.toLocaleString("en")} / ${run.steps ? run.steps.toLocaleString("en") : "?"}`),
    stat("images / s", run.images_per_s ? fmt(run.images_per_s) : "–"),
    stat("time left", run.status === "running" ? duration(remaining) : "–"),
    ...Object.entries(run.metrics).map(([name, m]) => stat(name, fmt(m.value))));
  document.getElementById("progress").replaceChildren(progressBar(run.steps ? run.step / run.steps : 0));
  const warning = document.getElementById("warning");
  warning.classList.toggle("hidden", !run.warning);
  warning.textContent = run.warning ? `log: ${run.warning}` : "";
  const grid = document.getElementById("grid");
  if (run.sample) {
    const src = fileUrl(run.sample, run.sample_version);
    if (grid.getAttribute("src") !== src) grid.src = src;
    grid.onload = () => { grid.style.width = `${Math.max(256, Math.min(512, grid.naturalWidth * 4))}px`; };
    document.getElementById("grid-caption").textContent = run.sample.split("/").pop();
  } else {
    document.getElementById("grid-caption").textContent = "no sample grid yet (train.sample_every)";
  }
  const key = JSON.stringify([data.losses.length, data.losses.at(-1), data.metrics.length]);
  if (key !== lastKey) {  // redraw only when something new arrived (keeps hover readouts alive)
    lastKey = key;
    document.getElementById("charts").replaceChildren(
      ...[...lossGroups(data.losses), ...metricGroups(data.metrics)].map(([title, s]) => lineChart(title, s)));
  }
}

async function poll() {
  let delay = POLL_IDLE_MS;
  try {
    const data = await api(`/api/run?run=${encodeURIComponent(runId)}`);
    showError("error", null);
    render(data);
    if (data.run.status === "running") delay = POLL_RUNNING_MS;
    document.getElementById("refresh").textContent = `Checked ${new Date().toLocaleTimeString()}; `
      + `next check in ${delay / 1000} s${data.run.status === "running" ? " (the run is training)" : ""}.`;
  } catch (error) {
    showError("error", error);
    if (error.status === 404) return;
  }
  setTimeout(poll, delay);
}

if (!runId) showError("error", new Error("which run? open it from the Runs page"));
else poll();
