// gankit serve: helpers shared by the pages (DOM building, API calls, SVG line charts).
// Plain ES modules, no build step, no third-party code.

export const PALETTE = ["#3056d3", "#e8590c", "#2f9e44", "#c2255c", "#7048e8", "#0c8599",
  "#e67700", "#495057", "#a61e4d", "#5c940d"];

/** document.createElement with attributes ({class, text, on...}) and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

/** GET (or any) JSON; throws an Error carrying the server's one-line message. */
export async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (!response.ok) {
    const message = body && body.error ? body.error : `${response.status} ${response.statusText}`;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

export function query(name) {
  return new URLSearchParams(window.location.search).get(name);
}

export function runUrl(page, runId) {
  return `/${page}?run=${encodeURIComponent(runId)}`;
}

export function fileUrl(relative, version) {
  const path = relative.split("/").map(encodeURIComponent).join("/");
  return `/files/${path}${version ? `?v=${version}` : ""}`;
}

/** The page header: brand, the five pages, the runs folder. */
export function header(active) {
  const pages = [["runs", "/", "Runs"], ["run", null, "Live"], ["explore", "/explore", "Explore"],
    ["translate", "/translate", "Translate"], ["compare", "/compare", "Compare"]];
  const nav = el("nav");
  for (const [name, href, label] of pages) {
    if (!href && name !== active) continue;
    nav.append(el("a", { href: href || window.location.href, class: name === active ? "active" : "" },
      label));
  }
  const where = el("span", { class: "where", id: "runs-dir" });
  const top = document.getElementById("top");
  top.replaceChildren(el("a", { class: "brand", href: "/" }, "gankit"), nav, where);
  api("/api/config").then((config) => { where.textContent = config.runs_dir; }).catch(() => {});
}

export function showError(target, error) {
  const box = typeof target === "string" ? document.getElementById(target) : target;
  if (!error) { box.classList.add("hidden"); box.textContent = ""; return; }
  box.textContent = error.message || String(error);
  box.classList.remove("hidden");
}

export function badge(status) {
  return el("span", { class: `badge ${status}`, "data-status": status }, status);
}

/** 3 significant digits, thousands separators for large numbers. */
export function fmt(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (!Number.isFinite(value)) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude >= 1000) return Math.round(value).toLocaleString("en");
  if (magnitude === 0) return "0";
  return Number(value.toPrecision(digits)).toString();
}

export function ago(seconds) {
  const delta = Math.max(0, Date.now() / 1000 - seconds);
  if (delta < 60) return `${Math.round(delta)} s ago`;
  if (delta < 3600) return `${Math.round(delta / 60)} min ago`;
  if (delta < 86400) return `${(delta / 3600).toFixed(1)} h ago`;
  return `${Math.round(delta / 86400)} d ago`;
}

export function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function progressBar(fraction) {
  const inner = el("div");
  inner.style.width = `${Math.max(0, Math.min(1, fraction || 0)) * 100}%`;
  return el("div", { class: "bar" }, inner);
}

function niceTicks(low, high, count = 5, integers = false) {
  if (!(high > low)) { high = low + 1; low -= 1; }
  const raw = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
  if (integers) step = Math.max(1, Math.round(step));
  const ticks = [];
  for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) ticks.push(t);
  return ticks;
}

/**
 * An SVG line chart. series: [{name, points: [[x, y], ...]}]; non-finite y values are gaps.
 * Returns a .chart element with a title, the plot and a legend; hovering shows the values.
 */
export function lineChart(title, series, { xLabel = "step", height = 220 } = {}) {
  const width = 560, left = 54, right = 26, top = 10, bottom = 30;
  const all = series.flatMap((s) => s.points.filter((p) => Number.isFinite(p[1])));
  const box = el("div", { class: "chart", "data-title": title }, el("h3", {}, title));
  if (!all.length) {
    box.append(el("div", { class: "empty small" }, "no values yet"));
    return box;
  }
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  const pad = (y1 - y0) * 0.06 || Math.abs(y0) * 0.1 || 1;
  y0 -= pad; y1 += pad;
  const sx = (x) => left + ((x - x0) / (x1 - x0)) * (width - left - right);
  const sy = (y) => top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom);
  const plot = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  for (const tick of niceTicks(y0, y1)) {
    plot.append(svg("line", { x1: left, x2: width - right, y1: sy(tick), y2: sy(tick),
      stroke: "#eceff4" }));
    const label = svg("text", { x: left - 6, y: sy(tick) + 4, "text-anchor": "end" });
    label.textContent = fmt(tick);
    plot.append(label);
  }
  for (const tick of niceTicks(x0, x1, 6, true)) {
    const label = svg("text", { x: sx(tick), y: height - 10, "text-anchor": "middle" });
    label.textContent = fmt(tick);
    plot.append(label);
  }
  const axis = svg("text", { x: 4, y: height - 10, "text-anchor": "start" });
  axis.textContent = xLabel;
  plot.append(axis, svg("line", { x1: left, x2: left, y1: top, y2: height - bottom, stroke: "#c5ccd8" }));
  series.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    let d = "", pen = false;
    for (const [x, y] of s.points) {
      if (!Number.isFinite(y)) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
      pen = true;
    }
    plot.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 1.6,
      "data-series": s.name }));
    if (s.points.length <= 40) {
      for (const [x, y] of s.points) {
        if (Number.isFinite(y)) plot.append(svg("circle", { cx: sx(x), cy: sy(y), r: 2.5, fill: color }));
      }
    }
  });
  addHover(plot, series, { sx, left, right, width, height, top, bottom, x0, x1 });
  const legend = el("div", { class: "legend" });
  series.forEach((s, i) => {
    const swatch = el("i");
    swatch.style.background = s.color || PALETTE[i % PALETTE.length];
    legend.append(el("span", {}, swatch, s.name));
  });
  box.append(plot, legend);
  return box;
}

function addHover(plot, series, g) {
  const cursor = svg("line", { y1: g.top, y2: g.height - g.bottom, stroke: "#98a2b3",
    "stroke-dasharray": "3 3", visibility: "hidden" });
  const readout = svg("text", { x: g.left + 6, y: g.top + 12, visibility: "hidden" });
  plot.append(cursor, readout);
  plot.addEventListener("mousemove", (event) => {
    const bounds = plot.getBoundingClientRect();
    const x = ((event.clientX - bounds.left) / bounds.width) * g.width;
    const step = g.x0 + ((x - g.left) / (g.width - g.left - g.right)) * (g.x1 - g.x0);
    const parts = [];
    let shown = null;
    for (const s of series) {
      let best = null;
      for (const p of s.points) if (!best || Math.abs(p[0] - step) < Math.abs(best[0] - step)) best = p;
      if (best) { parts.push(`${s.name} ${fmt(best[1])}`); shown = best[0]; }
    }
    if (shown === null) return;
    cursor.setAttribute("x1", g.sx(shown)); cursor.setAttribute("x2", g.sx(shown));
    readout.textContent = `step ${fmt(shown)}: ${parts.join(", ")}`;
    cursor.setAttribute("visibility", "visible"); readout.setAttribute("visibility", "visible");
  });
  plot.addEventListener("mouseleave", () => {
    cursor.setAttribute("visibility", "hidden"); readout.setAttribute("visibility", "hidden");
  });
}

/** Run ids in a <select>, the chosen one kept in the URL (?run=). */
export function runSelect(select, runs, chosen) {
  select.replaceChildren(...runs.map((r) => el("option", { value: r.id, selected: r.id === chosen },
    `${r.id} (${r.family}, step ${r.step})`)));
}

/** Wait until an <img> has loaded its current src (rejects on a load error). */
export function loaded(img) {
  return new Promise((resolve, reject) => {
    if (img.complete && img.naturalWidth) { resolve(img); return; }
    img.addEventListener("load", () => resolve(img), { once: true });
    img.addEventListener("error", () => reject(new Error("the image did not load")), { once: true });
  });
}
