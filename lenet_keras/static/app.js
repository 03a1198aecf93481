// lenet_keras serve: send a photo to /api/predict and show the verdict.
// No framework and nothing from the network: this file, style.css and the API are all.
"use strict";

const $ = (id) => document.getElementById(id);
let model = null;            // GET /api/model
let maxBytes = 10 * 1024 * 1024;
let previewUrl = null;

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

async function classify(file) {
  if (!file) return;
  showError("");
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
