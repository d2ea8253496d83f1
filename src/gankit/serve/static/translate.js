// Translate: upload an image, follow the job's tiles, compare before and after, download.
import { api, fmt, header, loaded, progressBar, query, runSelect, showError } from "./common.js";

header("translate");
const $ = (id) => document.getElementById(id);
const POLL_MS = 300;
let limits = null;

async function start() {
  try {
    const [config, data] = await Promise.all([api("/api/config"), api("/api/runs")]);
    limits = config;
    $("limits").textContent = `PNG, JPEG, WebP, BMP or GIF; at most ${bytes(config.max_upload_bytes)} `
      + `and ${fmt(config.max_upload_pixels / 1e6)} megapixels`;
    const translators = data.runs.filter((r) => r.task === "translate");
    if (!translators.length) {
      showError("error", new Error(`no translator run in ${data.runs_dir} (train one: gankit train cyclegan --data digits-edges --set data.paired=false)`));
      $("file").disabled = true;
      return;
    }
    const wanted = translators.find((r) => r.id === query("run")) || translators[0];
    runSelect($("run"), translators, wanted.id);
  } catch (error) {
    showError("error", error);
  }
}

function bytes(count) {
  if (count >= 2 ** 20) return `${fmt(count / 2 ** 20)} MiB`;
  return `${fmt(count / 1024)} KiB`;
}

function setStatus(text, fraction) {
  $("job").classList.remove("hidden");
  $("job-status").textContent = text;
  $("job-progress").replaceChildren(progressBar(fraction));
}

async function upload(file) {
  showError("error", null);
  $("result-card").classList.add("hidden");
  const run = $("run").value;
  setStatus(`Uploading ${file.name} (${bytes(file.size)})…`, 0);
  let job;
  try {
    const url = `/api/translate?run=${encodeURIComponent(run)}&name=${encodeURIComponent(file.name)}`;
    job = await api(url, { method: "POST", body: file,
      headers: { "Content-Type": file.type || "application/octet-stream" } });
  } catch (error) {
    $("job").classList.add("hidden");
    const message = error instanceof TypeError && limits && file.size > limits.max_upload_bytes
      ? `the file has ${file.size.toLocaleString("en")} bytes, more than the limit of `
        + `${limits.max_upload_bytes.toLocaleString("en")} (the server closed the connection)`
      : error.message;
    showError("error", new Error(`refused: ${message}`));
    return;
  }
  await follow(job.id);
}

async function follow(jobId) {
  for (;;) {
    const job = await api(`/api/jobs/${jobId}`);
    if (job.status === "queued") setStatus(`Waiting for ${job.queue_position} translation(s) before this one…`, 0);
    if (job.status === "running") {
      const fraction = job.tiles_total ? job.tiles_done / job.tiles_total : 0;
      setStatus(`Translating: ${job.tiles_done} of ${job.tiles_total || "?"} tiles`, fraction);
    }
    if (job.status === "failed") {
      $("job").classList.add("hidden");
      showError("error", new Error(`translation failed: ${job.message}`));
      return;
    }
    if (job.status === "done") { await showResult(job); return; }
    await new Promise((resolve) => { setTimeout(resolve, POLL_MS); });
  }
}

async function showResult(job) {
  const before = $("before"), after = $("result");
  before.src = job.input;
  after.src = job.result;
  await Promise.all([loaded(before), loaded(after)]);
  $("result-card").classList.remove("hidden");  // shown first: a hidden card has no width
  const [w, h] = job.input_size;
  const shown = Math.max(64, Math.min($("result-card").clientWidth - 34, Math.max(384, w)));
  before.style.width = `${shown}px`;
  before.style.height = `${Math.round((shown * h) / w)}px`;
  setStatus(`Done: ${job.tiles_total} tiles in ${job.seconds.toFixed(1)} s`, 1);
  $("result-caption").textContent = `input ${w} x ${h} -> result ${job.output_size[0]} x ${job.output_size[1]}`;
  $("download").href = `${job.result}?download=1`;
  $("result-card").dataset.job = job.id;
  split();
}

function split() {
  const percent = Number($("split").value);
  $("result").style.clipPath = `inset(0 0 0 ${percent}%)`;
  $("handle").style.left = `${percent}%`;
}

$("file").addEventListener("change", () => {
  const [file] = $("file").files;
  if (file) upload(file).catch((error) => showError("error", error));
  $("file").value = "";
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const [file] = event.dataTransfer.files;
  if (file) upload(file).catch((error) => showError("error", error));
});
$("split").addEventListener("input", split);
start();
