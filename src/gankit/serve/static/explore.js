// Explore a generator: sample a grid from a seed (class, truncation where the family has them)
// and walk the latent path between two seeds with a slider.
import { api, el, header, loaded, query, runSelect, showError } from "./common.js";

header("explore");
const $ = (id) => document.getElementById(id);
let caps = null;
let frames = null;  // the loaded strip of the current path: frame i at x = i * width

function runId() { return $("run").value; }

function conditionParams() {
  const params = new URLSearchParams({ run: runId() });
  if (caps && caps.conditional && $("class").value !== "") params.set("class", $("class").value);
  if (caps && caps.truncation && $("trunc-on").checked) params.set("truncation", $("truncation").value);
  return params;
}

async function sample() {
  const params = conditionParams();
  params.set("seed", $("seed").value || "0");
  params.set("n", $("count").value);
  const grid = $("grid");
  $("sample").disabled = true;
  try {
    await showImage(grid, `/api/sample.png?${params}`);
    const size = Math.round(Math.sqrt(Number($("count").value)));
    grid.style.width = `${Math.min(640, Math.max(256, grid.naturalWidth * Math.max(1, Math.floor(480 / grid.naturalWidth))))}px`;
    $("grid-caption").textContent = `seed ${params.get("seed")}, ${params.get("n")} images`
      + `${params.has("class") ? `, class ${params.get("class")}` : ""}`
      + `${params.has("truncation") ? `, truncation ${params.get("truncation")}` : ""} (${size} per row)`;
    grid.dataset.seed = params.get("seed");
  } finally {
    $("sample").disabled = false;
  }
}

/** Point an <img> at an API URL; on failure show the server's one-line message. */
async function showImage(img, url) {
  const response = await fetch(url);
  if (!response.ok) {
    let message = `${response.status}`;
    try { message = (await response.json()).error; } catch { /* not JSON */ }
    throw new Error(message);
  }
  const blobUrl = URL.createObjectURL(await response.blob());
  const old = img.src;
  img.src = blobUrl;
  await loaded(img);
  if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  showError("error", null);
}

async function walk() {
  const params = conditionParams();
  params.set("seed_a", $("seed-a").value || "0");
  params.set("seed_b", $("seed-b").value || "1");
  params.set("steps", $("steps").value);
  $("walk").disabled = true;
  try {
    const strip = $("strip");
    await showImage(strip, `/api/interpolate.png?${params}`);
    const count = Number(params.get("steps"));
    frames = { img: strip, count, width: strip.naturalWidth / count, height: strip.naturalHeight };
    const canvas = $("frame");
    canvas.width = frames.width; canvas.height = frames.height;
    const side = 256;
    canvas.style.width = `${side}px`;
    canvas.style.height = `${Math.round((side * frames.height) / frames.width)}px`;
    $("t").max = String(count - 1);
    $("t").value = "0";
    drawFrame();
  } finally {
    $("walk").disabled = false;
  }
}

function drawFrame() {
  if (!frames) return;
  const index = Number($("t").value);
  const context = $("frame").getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(frames.img, index * frames.width, 0, frames.width, frames.height, 0, 0, frames.width, frames.height);
  $("frame").dataset.frame = String(index);
  const t = frames.count > 1 ? index / (frames.count - 1) : 0;
  $("frame-caption").textContent = `frame ${index + 1} of ${frames.count}: ${Math.round(t * 100)}% of the way `
    + `from seed ${$("seed-a").value} to seed ${$("seed-b").value} (spherical interpolation)`;
}

async function chooseRun() {
  const id = runId();
  history.replaceState(null, "", `/explore?run=${encodeURIComponent(id)}`);
  caps = null;
  frames = null;
  $("caps").textContent = "loading the generator…";
  try {
    caps = await api(`/api/capabilities?run=${encodeURIComponent(id)}`);
  } catch (error) {
    $("caps").textContent = "";
    showError("error", error);
    return;
  }
  $("translator-note").classList.toggle("hidden", !caps.translator);
  $("explore").classList.toggle("hidden", caps.translator);
  $("translate-link").href = `/translate?run=${encodeURIComponent(id)}`;
  if (caps.translator) { $("caps").textContent = ""; return; }
  $("class-box").classList.toggle("hidden", !caps.conditional);
  $("class").replaceChildren(el("option", { value: "" }, "random"),
    ...Array.from({ length: caps.num_classes }, (_, k) => el("option", { value: String(k) }, String(k))));
  $("trunc-box").classList.toggle("hidden", !caps.truncation);
  const [c, h, w] = caps.image_shape;
  $("caps").textContent = `${w} x ${h} x ${c} images from the ${caps.source}`
    + `${caps.conditional ? `, ${caps.num_classes} classes` : ""}${caps.truncation ? ", truncation" : ""}`;
  await Promise.all([sample(), walk()]).catch((error) => showError("error", error));
}

async function start() {
  try {
    const data = await api("/api/runs");
    const generators = data.runs.filter((r) => r.task !== "translate");
    const wanted = query("run");
    const chosen = data.runs.find((r) => r.id === wanted) || generators[0];
    if (!chosen) { showError("error", new Error(`no trained generator in ${data.runs_dir} yet`)); return; }
    runSelect($("run"), chosen.task === "translate" ? [chosen, ...generators] : generators, chosen.id);
    await chooseRun();
  } catch (error) {
    showError("error", error);
  }
}

const guard = (fn) => () => fn().catch((error) => showError("error", error));
$("run").addEventListener("change", guard(chooseRun));
$("sample").addEventListener("click", guard(sample));
$("sample-new").addEventListener("click", guard(async () => {
  $("seed").value = String(Math.floor(Math.random() * 1e6));
  await sample();
}));
$("walk").addEventListener("click", guard(walk));
$("t").addEventListener("input", drawFrame);
$("trunc-on").addEventListener("change", () => { $("truncation").disabled = !$("trunc-on").checked; });
$("truncation").addEventListener("input", () => { $("trunc-value").textContent = Number($("truncation").value).toFixed(2); });
start();
