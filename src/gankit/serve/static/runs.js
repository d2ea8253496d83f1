// The runs page: every run in the folder, refreshed every few seconds.
import { ago, api, badge, el, fileUrl, fmt, header, progressBar, runUrl, showError } from "./common.js";

header("runs");
const box = document.getElementById("runs");

function metricText(metrics) {
  const names = Object.keys(metrics);
  if (!names.length) return el("span", { class: "muted" }, "–");
  return el("span", {}, names.map((name, i) => {
    const m = metrics[name];
    return el("span", { "data-metric": name }, i ? " · " : "", `${name} `, el("b", {}, fmt(m.value)),
      m.n ? el("span", { class: "muted small" }, ` n=${m.n.toLocaleString("en")}`) : null);
  }));
}

function row(run) {
  const thumb = run.sample
    ? el("img", { class: "thumb", src: fileUrl(run.sample, run.sample_version), alt: `newest grid of ${run.id}` })
    : el("div", { class: "nothumb" });
  const fraction = run.steps ? run.step / run.steps : 0;
  const use = run.task === "translate"
    ? el("a", { href: runUrl("translate", run.id) }, "Translate")
    : el("a", { href: runUrl("explore", run.id) }, "Explore");
  return el("tr", { "data-run": run.id },
    el("td", {}, el("a", { href: runUrl("run", run.id) }, thumb)),
    el("td", {}, el("a", { href: runUrl("run", run.id), class: "run-name" }, el("b", {}, run.id)),
      el("div", { class: "muted small" }, `updated ${ago(run.updated)}`)),
    el("td", {}, run.family),
    el("td", {}, run.dataset, run.resolution ? el("span", { class: "muted small" }, ` ${run.resolution}px`) : null),
    el("td", { class: "num" }, `${run.step.toLocaleString("en")} / ${run.steps ? run.steps.toLocaleString("en") : "?"}`,
      progressBar(fraction)),
    el("td", {}, badge(run.status)),
    el("td", {}, metricText(run.metrics)),
    el("td", { class: "num" }, run.images_per_s ? fmt(run.images_per_s) : "–"),
    el("td", {}, el("a", { href: runUrl("run", run.id) }, "Watch"), " · ", use),
  );
}

async function refresh() {
  try {
    const data = await api("/api/runs");
    showError("error", null);
    if (!data.runs.length) {
      box.replaceChildren(el("div", { class: "card empty" }, `No run in ${data.runs_dir} yet. Start one: `,
        el("code", {}, `gankit train dcgan --out ${data.runs_dir}/first`)));
      return;
    }
    const head = el("tr", {}, ["", "run", "family", "data", "step", "status", "latest metrics", "images/s", ""]
      .map((h, i) => el("th", { class: i === 4 || i === 7 ? "num" : "" }, h)));
    box.replaceChildren(el("table", { id: "runs-table" }, el("thead", {}, head),
      el("tbody", {}, data.runs.map(row))));
  } catch (error) {
    showError("error", error);
  }
}

refresh();
setInterval(refresh, 5000);
