"use strict";
const $ = (id) => document.getElementById(id);
const COLORS = ["#3559e0", "#e0533a", "#2f9e6b", "#c2410c", "#8b5cf6", "#0e9fb5", "#d4a10a",
                "#db2777", "#475467", "#65a30d"];
let model = null;
let lastFile = null;

function headers() {
  const token = $("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function getJSON(response) {
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (response.status === 401) { $("token-row").style.display = "block"; }
  if (!response.ok) {
    const detail = body && body.detail;
    const text = typeof detail === "string" ? detail : JSON.stringify(detail || response.statusText);
    throw new Error(response.status + ": " + text);
  }
  return body;
}

// The notes predict_clip prints before its answers (e.g. a model trained only on the synthetic
// demo set), shown above everything the model says.
function notes(lines) {
  const box = $("notes");
  box.replaceChildren();
  for (const line of lines || []) {
    const p = document.createElement("p");
    p.textContent = line;
    box.append(p);
  }
  box.hidden = !box.childElementCount;
}

async function loadModel() {
  try {
    model = await getJSON(await fetch("v1/model", { headers: headers() }));
    const w = model.window_seconds.toFixed(1);
    $("model").textContent = model.model + " \u00b7 " + model.genres.length + " genres, " +
      model.moods.length + " moods, " + model.features.length + " features \u00b7 " + w +
      " s windows at " + model.sample_rate + " Hz" +
      (model.synthetic_only ? " \u00b7 synthetic demo model" : "");
    notes(model.notes);
  } catch (err) {
    $("model").textContent = "model: " + err.message;
  }
}

function bars(el, ranked) {
  el.replaceChildren();
  for (const { label, probability } of ranked) {
    const row = document.createElement("div");
    row.className = "bar";
    const name = document.createElement("span");
    name.textContent = label;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = (100 * probability).toFixed(1) + "%";
    track.append(fill);
    const p = document.createElement("span");
    p.className = "p";
    p.textContent = probability.toFixed(2);
    row.append(name, track, p);
    el.append(row);
  }
}

function unitOf(name) {
  const entry = model && model.features.find((f) => f.name === name);
  return entry ? entry.unit : "";
}

// What a feature was trained on: the prediction's feature_basis, else /v1/model's trained_on.
function basisOf(name, basis) {
  if (basis && basis[name]) return basis[name];
  const entry = model && model.features.find((f) => f.name === name);
  return entry && entry.trained_on ? entry.trained_on : "";
}

function features(values, basis) {
  const table = $("features");
  table.replaceChildren();
  const names = Object.keys(values);
  $("features-card").hidden = names.length === 0;
  for (const name of names) {
    const unit = unitOf(name);
    const trainedOn = basisOf(name, basis);
    const tr = document.createElement("tr");
    const k = document.createElement("td");
    k.textContent = name;
    if (trainedOn) {
      const small = document.createElement("span");
      small.className = "basis";
      small.textContent = "trained on: " + trainedOn;
      k.append(small);
      tr.title = name + " was trained on " + trainedOn;
    }
    const v = document.createElement("td");
    v.className = "v";
    v.textContent = unit ? values[name].toFixed(1) + " " + unit : values[name].toFixed(3);
    tr.append(k, v);
    table.append(tr);
  }
}

function drawTimeline(windows) {
  const canvas = $("timeline");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  $("legend").replaceChildren();
  if (!windows.length) return;
  const span = windows[windows.length - 1].start + windows[windows.length - 1].duration;
  $("timeline-note").textContent = "(" + windows.length + " windows, " + span.toFixed(1) + " s)";
  const left = 34, right = 8, top = 8, gap = 22;
  const panel = (height - top - gap - 20) / 2;
  const x = (t) => left + (width - left - right) * (span ? t / span : 0);
  const panels = [["genre", top], ["mood", top + panel + gap]];
  ctx.font = "11px system-ui, sans-serif";
  for (const [task, y0] of panels) {
    ctx.strokeStyle = "#d0d5dd";
    ctx.fillStyle = "#667085";
    ctx.strokeRect(left, y0, width - left - right, panel);
    ctx.fillText(task, left + 6, y0 + 14);
    ctx.fillText("1", left - 12, y0 + 9);
    ctx.fillText("0", left - 12, y0 + panel);
    const names = (model && (task === "genre" ? model.genres : model.moods)) ||
      windows[0][task].map((e) => e.label);
    names.forEach((name, i) => {
      const color = COLORS[i % COLORS.length];
      ctx.strokeStyle = color;
      ctx.lineWidth = 1.8;
      ctx.beginPath();
      windows.forEach((w, j) => {
        const entry = w[task].find((e) => e.label === name);
        const p = entry ? entry.probability : 0;
        const px = x(w.start + w.duration / 2), py = y0 + panel * (1 - p);
        if (j === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
      });
      ctx.stroke();
      const key = document.createElement("span");
      key.style.setProperty("--c", color);
      key.textContent = task + ": " + name;
      $("legend").append(key);
    });
  }
  ctx.fillStyle = "#667085";
  for (let t = 0; t <= span; t += Math.max(1, Math.ceil(span / 8))) {
    ctx.fillText(t + " s", Math.min(x(t) - 6, width - right - 26), height - 4);
  }
}

async function tag(file) {
  lastFile = file;
  document.body.dataset.state = "busy";
  status("tagging " + file.name + " \u2026");
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    if (!model) await loadModel();
    // One upload per file: the clip prediction (computed by the server exactly as without
    // timeline) and the timeline come back together.
    const answer = await getJSON(await fetch("v1/tag?timeline=true&with_clip=true&top=100",
      { method: "POST", body: form, headers: headers() }));
    const clip = answer.clip;
    $("results").style.display = "block";
    $("genre-top").textContent = clip.genre.length ? clip.genre[0].label : "\u2014";
    $("mood-top").textContent = clip.mood.length ? clip.mood[0].label : "\u2014";
    bars($("genre"), clip.genre);
    bars($("mood"), clip.mood);
    $("tags-card").hidden = !clip.tags.length;
    bars($("tags"), clip.tags.slice(0, 10));
    const genreTags = Object.entries(clip.genre_tags || {})
      .map(([label, probability]) => ({ label, probability }));
    $("genre-tags-card").hidden = !genreTags.length;
    bars($("genre-tags"), genreTags.slice(0, 10));
    features(clip.features, clip.feature_basis);
    status(clip.path + ": " + clip.duration.toFixed(1) + " s, " + clip.windows + " window(s)");
    drawTimeline(answer.timeline);
    document.body.dataset.state = "done";  // for the browser test
  } catch (err) {
    status(err.message, true);
    document.body.dataset.state = "error";
  }
}

$("file").addEventListener("change", (e) => { if (e.target.files[0]) tag(e.target.files[0]); });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) tag(e.dataTransfer.files[0]);
});
$("retry").addEventListener("click", () => { model = null; loadModel(); if (lastFile) tag(lastFile); });
loadModel();
