// lenet_keras serve: send a photo to /api/predict and show the verdict.
// No framework and nothing from the network: this file, style.css and the API are all.
"use strict";

const $ = (id) => document.getElementById(id);
let model = null;            // GET /api/model
let maxBytes = 10 * 1024 * 1024;
let previewUrl = null;
let lastFile = null;         // the photo on show, for the heat map

const pretty = (label) => {
  const text = label.replace(/_/g, " ").trim();
  return text.charAt(0).toUpperCase() + text.slice(1);
};
const basename = (path) => path.split(/[\\/]/).filter(Boolean).pop() || path;

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function loadModel() {
  try {
    const response = await fetch("/api/model");
    model = await response.json();
  } catch (error) {
    $("subtitle").textContent = "The server is not answering.";
    return;
  }
  maxBytes = model.max_upload_bytes || maxBytes;
  const positive = model.positive_class;
  const title = positive ? `${pretty(positive)} or not?` : "What is it?";
  $("title").textContent = title;
  document.title = `${title} · lenet_keras`;
  $("subtitle").textContent = positive
    ? `Show it a photo: it says "${pretty(positive)}!" or "Not ${pretty(positive).toLowerCase()}!".`
    : `Show it a photo: it picks one of ${model.labels.length} classes (${model.labels.map(pretty).join(", ")}).`;
  const shape = model.input.shape.join("×");
  $("model").textContent =
    `Serving ${basename(model.model)} · ${model.quantization === "none" ? model.format : model.quantization}` +
    ` · input ${shape} ${model.input.dtype}`;
}

function showPreview(file) {
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  const img = $("preview");
  img.onload = () => img.classList.toggle("pixelated", img.naturalWidth < 128);
  img.onerror = () => { img.hidden = true; };
  img.src = previewUrl;
  img.hidden = false;
}

function showResult(result) {
  const verdict = $("verdict");
  verdict.textContent = result.verdict;
  const positive = model && model.positive_class;
  verdict.dataset.state = positive ? (result.label === positive ? "yes" : "no") : "top";
  const bars = $("bars");
  bars.replaceChildren(...result.top.map(({ label, probability }) => {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = pretty(label);
    name.title = label;
    const track = document.createElement("span");
    track.className = "track";
    const fill = document.createElement("span");
    fill.className = "fill";
    fill.style.width = `${(probability * 100).toFixed(1)}%`;
    track.append(fill);
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = `${(probability * 100).toFixed(1)}%`;
    item.append(name, track, pct);
    return item;
  }));
  $("timing").textContent =
    `Inference ${result.latency_ms.toFixed(2)} ms · ${basename(result.model)} (${result.format})`;
}

// Heat map colours: blue (no evidence) -> cyan -> yellow -> red (most), opacity rising too.
const STOPS = [[0, 0, 255], [0, 255, 255], [255, 255, 0], [255, 0, 0]];
function heatColour(v) {
  const x = Math.min(Math.max(v, 0), 1) * (STOPS.length - 1);
  const i = Math.min(Math.floor(x), STOPS.length - 2);
  const t = x - i;
  const rgb = STOPS[i].map((c, k) => Math.round(c + (STOPS[i + 1][k] - c) * t));
  return [...rgb, Math.round(255 * (0.15 + 0.55 * v))];
}

// Paint the server's heat map (height x width, 0-1) at the photo's own size, so that it
// lies over the photo with the same object-fit (the model sees the photo stretched).
function paintHeat(result) {
  const small = document.createElement("canvas");
  small.width = result.width;
  small.height = result.height;
  const pixels = small.getContext("2d").createImageData(result.width, result.height);
  result.heatmap.forEach((v, i) => pixels.data.set(heatColour(v), 4 * i));
  small.getContext("2d").putImageData(pixels, 0, 0);
  const photo = $("preview");
  const big = document.createElement("canvas");
  big.width = photo.naturalWidth || result.width;
  big.height = photo.naturalHeight || result.height;
  big.getContext("2d").drawImage(small, 0, 0, big.width, big.height);
  $("heat").src = big.toDataURL("image/png");
  $("heat").hidden = false;
  const how = result.method === "occlusion" ? "occlusion (hiding patches)" : result.method;
  $("heat-note").textContent =
    `Heat map of "${pretty(result.label)}" (${(result.probability * 100).toFixed(1)}%) by ${how}: red areas decided it most.`;
}

async function explainPhoto() {
  $("heat").hidden = true;
  $("heat-note").textContent = "";
  if (!$("heat-toggle").checked || !lastFile) return;
  const file = lastFile;
  $("heat-note").textContent = "Computing the heat map…";
  const form = new FormData();
  form.append("file", file, file.name || "photo");
  try {
    const response = await fetch("/api/explain", { method: "POST", body: form });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
    if (file === lastFile && $("heat-toggle").checked) paintHeat(body);
  } catch (error) {
    $("heat-note").textContent = "";
    showError(`Could not compute the heat map: ${error.message}`);
  }
}

async function classify(file) {
  if (!file) return;
  showError("");
  lastFile = null;
  $("heat").hidden = true;
  $("heat-note").textContent = "";
  if (file.size > maxBytes) {
    showError(`That file is ${(file.size / 2 ** 20).toFixed(1)} MB; the limit is ${maxBytes / 2 ** 20} MB.`);
    return;
  }
  showPreview(file);
  const verdict = $("verdict");
  verdict.textContent = "…";
  verdict.dataset.state = "busy";
  $("result").setAttribute("aria-busy", "true");
  const form = new FormData();
  form.append("file", file, file.name || "photo");
  try {
    const response = await fetch("/api/predict", { method: "POST", body: form });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
    showResult(body);
    lastFile = file;
    explainPhoto();
  } catch (error) {
    verdict.textContent = "\u00a0";
    verdict.dataset.state = "idle";
    $("bars").replaceChildren();
    $("timing").textContent = "";
    showError(`Could not classify ${file.name || "that"}: ${error.message}`);
  } finally {
    $("result").setAttribute("aria-busy", "false");
  }
}

function wire() {
  $("heat-toggle").addEventListener("change", explainPhoto);
  for (const id of ["file", "camera"]) {
    $(id).addEventListener("change", (event) => {
      classify(event.target.files[0]);
      event.target.value = "";  // choosing the same file again still fires "change"
    });
  }
  const drop = $("drop");
  // Dropping a file anywhere must not make the browser navigate away to it.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => event.preventDefault());
  }
  drop.addEventListener("dragenter", () => drop.classList.add("dragging"));
  drop.addEventListener("dragover", (event) => {
    event.dataTransfer.dropEffect = "copy";
    drop.classList.add("dragging");
  });
  drop.addEventListener("dragleave", (event) => {
    if (!drop.contains(event.relatedTarget)) drop.classList.remove("dragging");
  });
  drop.addEventListener("drop", (event) => {
    drop.classList.remove("dragging");
    classify(event.dataTransfer.files[0]);
  });
  window.addEventListener("paste", (event) => {
    const item = [...event.clipboardData.items].find((i) => i.kind === "file");
    if (item) classify(item.getAsFile());
  });
}

wire();
loadModel();
