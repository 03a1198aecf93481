// export --web: classify photos in the browser with LiteRT.js, offline after the first
// visit. Nothing is fetched from anywhere but this folder (see the page's CSP).
//
// For scripts and tests:
//   window.lenetKeras.ready                 a Promise of model.json, once the model runs
//   window.lenetKeras.classify(urlOrBlob)   -> Promise<{label, verdict, top: [{label,
//                                           probability}], latency_ms, preprocess_ms}>
//   window.lenetKeras.preprocess(urlOrBlob) -> Promise<Uint8Array>, the model's input
//   window.lenetKeras.benchmark(runs = 200) -> Promise<{latency_ms, runs}>: the model
//                                           alone, mean of `runs` calls in the fastest
//                                           of 5 rounds (as export times LiteRT)
// latency_ms is the model alone (input tensor in, probabilities out), as the export
// report's latency_us is; preprocess_ms is decoding and resizing (preprocess.js).
import { loadAndCompile, loadLiteRt, Tensor } from "./litertjs/index.js";

const $ = (id) => document.getElementById(id);
const LIVE_INTERVAL_MS = 250;       // live camera: about four verdicts a second
const TOP_K = 5;
const SERVICE_WORKER_WAIT_MS = 5000;
const BENCHMARK_ROUNDS = 5;

let info = null;                    // model.json
let model = null;                   // LiteRT.js CompiledModel
let running = Promise.resolve();    // one model call at a time

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// On the first visit, wait until the service worker controls the page, so the model and
// the runtime are fetched once, through it, and cached for offline use.
async function serviceWorker() {
  if (!("serviceWorker" in navigator) || !window.isSecureContext) {
    return "no service worker here (open the page over https or on localhost to use it offline)";
  }
  try {
    await navigator.serviceWorker.register("sw.js");
    if (!navigator.serviceWorker.controller) {
      await Promise.race([
        new Promise((resolve) => navigator.serviceWorker.addEventListener(
          "controllerchange", resolve, { once: true })),
        sleep(SERVICE_WORKER_WAIT_MS)]);
    }
    return navigator.serviceWorker.controller ? "Works offline: add it to your home screen."
                                              : "Offline copy not ready yet.";
  } catch (error) {
    return `No offline copy (${error.message}).`;
  }
}

async function start() {
  const offline = await serviceWorker();
  const response = await fetch("model.json");
  if (!response.ok) throw new Error(`model.json: HTTP ${response.status}`);
  info = await response.json();
  await loadLiteRt(new URL("litertjs/", location.href).href);
  const bytes = new Uint8Array(await (await fetch(info.model)).arrayBuffer());
  model = await loadAndCompile(bytes, { accelerator: "wasm" });
  await infer(new Uint8Array(info.input.shape.reduce((a, b) => a * b, 1)));  // warm-up
  showModel(offline);
  return info;
}

// numpy's rint (round half to even), for the input quantization below.
function rint(x) {
  const floor = Math.floor(x), rest = x - floor;
  if (rest !== 0.5) return rest > 0.5 ? floor + 1 : floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

// Raw pixels -> the input tensor's numbers, as runtimes.TFLiteModel.prepare does: the
// export's uint8 input has scale 1 and zero point 0 (the pixels as they are) whenever
// calibration saw both 0 and 255; otherwise q = rint(x / scale + zero_point) in float32.
function quantized(pixels) {
  const { scale, zero_point: zero } = info.input;
  if (!scale || (scale === 1 && zero === 0)) return pixels;
  const f = Math.fround, s = f(scale), out = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    out[i] = Math.min(255, Math.max(0, rint(f(f(pixels[i] / s) + zero))));
  }
  return out;
}

// One forward pass: model input (uint8 [1,H,W,C]) -> probabilities and milliseconds.
function infer(pixels) {
  const call = running.then(async () => {
    const started = performance.now();
    const input = new Tensor(quantized(pixels), info.input.shape);
    try {
      const outputs = await model.run([input]);
      const probabilities = Float32Array.from(outputs[0].toTypedArray());
      for (const output of outputs) output.delete();
      return { probabilities, ms: performance.now() - started };
    } finally {
      input.delete();
    }
  });
  running = call.catch(() => {});
  return call;
}

// ---------------------------------------------------------------------------------------
// Photos -> model input (preprocess.js, in a worker)
// ---------------------------------------------------------------------------------------

const worker = new Worker("preprocess.js");
const pending = new Map();
let nextId = 0;
worker.onmessage = ({ data }) => {
  const { resolve, reject } = pending.get(data.id);
  pending.delete(data.id);
  if (data.error) reject(new Error(data.error)); else resolve(data);
};

async function asBlob(source) {
  if (source instanceof Blob || source instanceof ImageBitmap) return source;
  const response = await fetch(source);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.blob();
}

async function prepare(source, preview = false) {
  const [, height, width, channels] = info.input.shape;
  const blob = await asBlob(source);
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, source: blob, height, width, channels, preview },
                       blob instanceof ImageBitmap ? [blob] : []);
  });
}

// ---------------------------------------------------------------------------------------
// The verdict (as serve.py's: "X!" / "Not X!" for a --positive-class model)
// ---------------------------------------------------------------------------------------

const pretty = (label) => {
  const text = label.replace(/_/g, " ").trim();
  return text.charAt(0).toUpperCase() + text.slice(1);
};

// X for labels [not_X, X] (fit --positive-class X), else null.
const positiveClass = (labels) =>
  labels.length === 2 && labels[0] === `not_${labels[1]}` ? labels[1] : null;

function verdict(label) {
  const positive = positiveClass(info.labels);
  if (!positive) return pretty(label);
  const name = pretty(positive);
  return label === positive ? `${name}!` : `Not ${name.charAt(0).toLowerCase() + name.slice(1)}!`;
}

function answer(probabilities, latency, preprocessMs) {
  // Most probable first; ties keep the lower index (numpy's stable argsort of -p).
  const order = [...probabilities.keys()].sort((a, b) => probabilities[b] - probabilities[a] || a - b);
  const top = order.slice(0, TOP_K).map((i) => ({ label: info.labels[i] ?? `class_${i}`,
                                                  probability: probabilities[i] }));
  return { label: top[0].label, verdict: verdict(top[0].label), top,
           latency_ms: latency, preprocess_ms: preprocessMs };
}

async function classify(source, preview = false) {
  await ready;
  const prepared = await prepare(source, preview);
  const { probabilities, ms } = await infer(prepared.input);
  return { ...answer(probabilities, ms, prepared.ms), preview: prepared.preview };
}

// ---------------------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------------------

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function showModel(offline) {
  const positive = positiveClass(info.labels);
  const title = positive ? `${pretty(positive)} or not?` : "What is it?";
  $("title").textContent = title;
  document.title = `${title} · lenet_keras`;
  $("subtitle").textContent = positive
    ? `Show it a photo: it says "${pretty(positive)}!" or "Not ${pretty(positive).toLowerCase()}!".`
    : `Show it a photo: it picks one of ${info.labels.length} classes (${info.labels.map(pretty).join(", ")}).`;
  $("model").textContent = `${info.name} · ${info.model} (${info.format}) · input ` +
    `${info.input.shape.slice(1).join("×")} ${info.input.dtype} · LiteRT.js ${info.runtime_version}`;
  $("offline").textContent = offline;
  $("live").hidden = !(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
}

function showPreview(bitmap) {
  if (!bitmap) return;
  const canvas = $("preview");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  bitmap.close();
  canvas.classList.toggle("pixelated", Math.max(canvas.width, canvas.height) < 128);
  canvas.hidden = false;
}

function showResult(result) {
  const node = $("verdict");
  node.textContent = result.verdict;
  const positive = positiveClass(info.labels);
  node.dataset.state = positive ? (result.label === positive ? "yes" : "no") : "top";
  $("bars").replaceChildren(...result.top.map(({ label, probability }) => {
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
  $("timing").textContent = `Inference ${result.latency_ms.toFixed(2)} ms in this browser ` +
    `(photo ${result.preprocess_ms.toFixed(0)} ms) · ${info.model} (${info.format})`;
}

async function classifyFile(file) {
  if (!file) return;
  stopLive();
  showError("");
  const node = $("verdict");
  node.textContent = "…";
  node.dataset.state = "busy";
  $("result").setAttribute("aria-busy", "true");
  try {
    const result = await classify(file, true);
    showPreview(result.preview);
    showResult(result);
  } catch (error) {
    node.textContent = "\u00a0";
    node.dataset.state = "idle";
    $("bars").replaceChildren();
    $("timing").textContent = "";
    showError(`Could not classify ${file.name || "that"}: ${error.message}.`);
  } finally {
    $("result").setAttribute("aria-busy", "false");
  }
}

// Live camera: a frame every LIVE_INTERVAL_MS, classified as it comes.
let stream = null;

function stopLive() {
  if (!stream) return;
  for (const track of stream.getTracks()) track.stop();
  stream = null;
  $("video").hidden = true;
  $("live").setAttribute("aria-pressed", "false");
  $("live").textContent = "Live camera";
}

async function startLive() {
  showError("");
  try {
    stream = await navigator.mediaDevices.getUserMedia(
      { video: { facingMode: "environment" }, audio: false });
  } catch (error) {
    showError(`No camera: ${error.message}.`);
    return;
  }
  const video = $("video");
  video.srcObject = stream;
  await video.play();
  video.hidden = false;
  $("preview").hidden = true;
  $("live").setAttribute("aria-pressed", "true");
  $("live").textContent = "Stop camera";
  while (stream) {
    const started = performance.now();
    try {
      showResult(await classify(await createImageBitmap(video)));
    } catch (error) {
      showError(`Camera frame: ${error.message}.`);
    }
    await sleep(Math.max(0, LIVE_INTERVAL_MS - (performance.now() - started)));
  }
}

function wire() {
  for (const id of ["file", "camera"]) {
    $(id).addEventListener("change", (event) => {
      classifyFile(event.target.files[0]);
      event.target.value = "";  // choosing the same file again still fires "change"
    });
  }
  $("live").addEventListener("click", () => (stream ? stopLive() : startLive()));
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
    classifyFile(event.dataTransfer.files[0]);
  });
  window.addEventListener("paste", (event) => {
    const item = [...event.clipboardData.items].find((i) => i.kind === "file");
    if (item) classifyFile(item.getAsFile());
  });
}

const ready = start();
ready.catch((error) => {
  $("subtitle").textContent = "The model did not load.";
  showError(`Could not load the model: ${error.message}`);
});
wire();

window.lenetKeras = {
  ready,
  classify: async (source) => {
    const { preview, ...result } = await classify(source);
    return result;
  },
  benchmark: async (runs = 200) => {
    await ready;
    const input = new Uint8Array(info.input.shape.reduce((a, b) => a * b, 1)).fill(128);
    let best = Infinity;
    for (let round = 0; round < BENCHMARK_ROUNDS; round++) {
      const started = performance.now();
      for (let i = 0; i < runs; i++) await infer(input);
      best = Math.min(best, (performance.now() - started) / runs);
    }
    return { latency_ms: best, runs };
  },
  preprocess: async (source) => {
    await ready;
    return (await prepare(source)).input;
  },
};
