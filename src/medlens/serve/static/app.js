// medlens page: plain JS, no build step. Talks to /v1/render, /v1/analyze and
// /v1/audio/transcriptions of the server that served it.
"use strict";

const $ = (id) => document.getElementById(id);
// zoom null = fit: the whole image in its viewer, scaled up or down (a 128 px CT is not shown
// at 100 % in a corner, a 1024×1291 radiograph does not overflow the window).
const state = { zoom: null, window: null, stacks: { current: null, prior: null } };

$("api-key").value = sessionStorage.getItem("medlens-key") || "";
$("api-key").addEventListener("change", () => sessionStorage.setItem("medlens-key", $("api-key").value));

function headers() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: "Bearer " + key } : {};
}

async function post(path, form) {
  const response = await fetch(path, { method: "POST", body: form, headers: headers() });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = body.error ? body.error.message : response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return body;
}

function status(text) { $("status").textContent = text; }

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = reject;
    image.src = url;
  });
}

// ---------------------------------------------------------------- viewer
const fileInput = (which) => $(which === "current" ? "study-file" : "prior-file");

async function render(which) {
  const file = fileInput(which).files[0];
  if (!file) { state.stacks[which] = null; return; }
  const form = new FormData();
  form.append("file", file);
  if (state.window) form.append("window", state.window);
  if ($("modality").value) form.append("modality", $("modality").value);
  status(`Loading ${which} study…`);
  try {
    const stack = await post("/v1/render", form);
    stack.images = await Promise.all(stack.slices.map(loadImage));
    state.stacks[which] = stack;
    const slider = $(which + "-slice");
    slider.max = String(stack.images.length - 1);
    slider.value = String(Math.floor((stack.images.length - 1) / 2));
    slider.hidden = stack.images.length < 2;
    $(which + "-viewer").hidden = false;
    if (which === "current") windowButtons(stack);
    draw(which);
    status("");
  } catch (error) { status(error.message); }
}

function windowButtons(stack) {
  const bar = $("windows");
  bar.innerHTML = "";
  bar.hidden = stack.windows.length === 0;
  for (const name of stack.windows) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = name;
    button.dataset.window = name;
    button.className = name === stack.window ? "active" : "";
    button.addEventListener("click", () => { state.window = name; render("current"); render("prior"); });
    bar.appendChild(button);
  }
}

function fitScale(which, image) {
  const frame = $(which + "-canvas").parentElement;
  const width = frame.clientWidth || image.width, height = frame.clientHeight || image.height;
  return Math.min(width / image.width, height / image.height);
}

function scaleOf(which, image) { return state.zoom ?? fitScale(which, image); }

function draw(which) {
  const stack = state.stacks[which];
  if (!stack) return;
  const index = Number($(which + "-slice").value);
  const image = stack.images[index];
  const canvas = $(which + "-canvas");
  const scale = scaleOf(which, image);
  canvas.width = Math.max(1, Math.floor(image.width * scale));
  canvas.height = Math.max(1, Math.floor(image.height * scale));
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = scale < 1;
  context.drawImage(image, 0, 0, canvas.width, canvas.height);
  $(which + "-slice-label").textContent = stack.images.length > 1
    ? `slice ${stack.slice_indices[index] + 1} / ${stack.num_slices}` : "";
}

function setZoom(zoom) {
  state.zoom = zoom === null ? null : Math.min(16, Math.max(0.1, zoom));
  $("zoom-level").textContent = state.zoom === null ? "fit" : Math.round(state.zoom * 100) + "%";
  $("zoom-fit").classList.toggle("active", state.zoom === null);
  draw("current"); draw("prior");
}

function currentScale() {
  const stack = state.stacks.current;
  return stack ? scaleOf("current", stack.images[Number($("current-slice").value)]) : 1;
}

for (const which of ["current", "prior"]) {
  fileInput(which).addEventListener("change", () => render(which));
  $(which + "-slice").addEventListener("input", () => draw(which));
  $(which + "-canvas").addEventListener("wheel", (event) => {
    event.preventDefault();
    if (event.ctrlKey) { setZoom(currentScale() * (event.deltaY < 0 ? 1.25 : 0.8)); return; }
    const slider = $(which + "-slice");
    slider.value = String(Number(slider.value) + (event.deltaY > 0 ? 1 : -1));
    draw(which);
  });
}
$("zoom-in").addEventListener("click", () => setZoom(currentScale() * 1.25));
$("zoom-out").addEventListener("click", () => setZoom(currentScale() * 0.8));
$("zoom-fit").addEventListener("click", () => setZoom(null));
$("zoom-reset").addEventListener("click", () => setZoom(1));
window.addEventListener("resize", () => { if (state.zoom === null) { draw("current"); draw("prior"); } });
$("modality").addEventListener("change", () => { render("current"); render("prior"); });
$("kind").addEventListener("change", () => { $("choices").hidden = $("kind").value !== "choice"; });

// ---------------------------------------------------------------- asking
async function ask() {
  const file = $("study-file").files[0];
  const question = $("question").value.trim();
  if (!file || !question) { status("Choose a study and type or record a question."); return; }
  const form = new FormData();
  form.append("file", file);
  const prior = $("prior-file").files[0];
  if (prior) form.append("prior", prior);
  form.append("question", question);
  if ($("kind").value) form.append("kind", $("kind").value);
  if ($("modality").value) form.append("modality", $("modality").value);
  if ($("kind").value === "choice") form.append("choices", $("choices").value);
  // What /v1/render said this server can export an answer about this study as (an SR needs
  // DICOM images, both need medlens[pacs]).
  const exports = state.stacks.current ? state.stacks.current.exports : [];
  if (exports.length) form.append("export", exports.join(","));
  status("Asking the model…");
  $("ask-button").disabled = true;
  try {
    showResult(await post("/v1/analyze", form));
    status("");
  } catch (error) { status(error.message); }
  finally { $("ask-button").disabled = false; }
}

async function showResult(result) {
  $("result").hidden = false;
  $("abstained").hidden = !result.abstained;
  $("answer").textContent = result.abstained ? "The model abstained: no reliable answer."
    : (result.answer ?? `(could not be read) ${result.raw}`);
  $("abstain-reason").textContent = result.abstained ? (result.abstain_reason || "") : "";
  showProvenance(result);
  showExports(result.export);
  const confidence = result.confidence;
  $("confidence-row").hidden = !confidence;
  if (confidence) {
    $("confidence-bar").style.width = Math.round(confidence.value * 100) + "%";
    $("confidence-value").textContent = confidence.value.toFixed(2);
    $("confidence-method").textContent = confidence.method + (confidence.calibrated ? ", calibrated" : ", not calibrated");
  }
  $("rationale").textContent = result.rationale ? "Rationale: " + result.rationale : "";
  const sections = $("sections");
  sections.innerHTML = "";
  for (const [name, text] of Object.entries(result.sections || {})) {
    const term = document.createElement("dt"); term.textContent = name;
    const detail = document.createElement("dd"); detail.textContent = text;
    sections.append(term, detail);
  }
  const deid = $("deid");
  deid.innerHTML = "";
  for (const record of result.deidentification) {
    const item = document.createElement("li");
    item.textContent = JSON.stringify(record);
    deid.appendChild(item);
  }
  await drawModelViews(result);
}

const LABEL_NOTES = {
  "baseline": "A baseline answers without looking at the image (a floor to compare models with), not a vision-language model.",
  "demonstration model": "A small demonstration model shipped with medlens to show the workflow; not for clinical use.",
  "user model": "",
};

// Who answered and what de-identification did, beside every answer.
function showProvenance(result) {
  $("model-name").textContent = result.model;
  const label = $("model-label");
  label.textContent = result.model_label || "model";
  label.className = "label " + (result.model_label || "").split(" ")[0];
  $("model-label-note").textContent = result.model_note || LABEL_NOTES[result.model_label] || "";
  const redaction = result.study && result.study.redaction;
  const summary = $("deid-summary");
  summary.textContent = "De-identification: "
    + (redaction ? redaction.text : "no pixel redaction recorded");
  summary.classList.toggle("review", Boolean(redaction && redaction.needs_review));
}

// The answer as hospital systems take it (DICOM SR, FHIR DiagnosticReport), built by the
// server's interop code and offered from memory: the server keeps no copy to link to.
function showExports(exported) {
  for (const id of ["download-sr", "download-fhir"]) {
    const link = $(id);
    if (link.href) URL.revokeObjectURL(link.href);
    link.removeAttribute("href");
    link.hidden = true;
  }
  $("exports").hidden = !exported;
  if (!exported) return;
  if (exported.sr) {
    const bytes = Uint8Array.from(atob(exported.sr.data), (c) => c.charCodeAt(0));
    offer("download-sr", exported.sr.filename, new Blob([bytes], { type: exported.sr.media_type }));
  }
  if (exported.fhir) {
    const text = JSON.stringify(exported.fhir.resource, null, 2);
    offer("download-fhir", exported.fhir.filename, new Blob([text], { type: "application/fhir+json" }));
  }
  $("export-identifiers").textContent = "Identifiers: " + exported.identifiers;
}

function offer(id, filename, blob) {
  const link = $(id);
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  link.hidden = false;
}

async function drawModelViews(result) {
  const holder = $("model-views");
  holder.innerHTML = "";
  for (const [index, view] of result.views.entries()) {
    const wrap = document.createElement("div");
    wrap.className = "model-view";
    const canvas = document.createElement("canvas");
    canvas.width = view.width; canvas.height = view.height;
    canvas.dataset.viewIndex = String(index);
    const context = canvas.getContext("2d");
    context.drawImage(await loadImage(view.image), 0, 0);
    wrap.appendChild(canvas);
    holder.appendChild(wrap);
    const scale = canvas.getBoundingClientRect().width / view.width;
    for (const box of result.boxes.filter((b) => b.view_index === index)) {
      context.strokeStyle = "#ff3333";
      context.lineWidth = Math.max(2, view.width / 200);
      context.strokeRect(box.x0, box.y0, box.x1 - box.x0, box.y1 - box.y0);
      const overlay = document.createElement("div");
      overlay.className = "box";
      Object.assign(overlay.style, {
        left: box.x0 * scale + "px", top: box.y0 * scale + "px",
        width: (box.x1 - box.x0) * scale + "px", height: (box.y1 - box.y0) * scale + "px",
      });
      overlay.dataset.box = JSON.stringify([box.x0, box.y0, box.x1, box.y1]);
      const label = document.createElement("span");
      label.textContent = box.label;
      overlay.appendChild(label);
      wrap.appendChild(overlay);
    }
  }
}

$("ask-button").addEventListener("click", ask);
$("question").addEventListener("keydown", (event) => { if (event.key === "Enter") ask(); });

// ---------------------------------------------------------------- speech
// Record with WebAudio and encode 16-bit PCM WAV here, so the server needs no ffmpeg.
const recorder = { stream: null, context: null, node: null, chunks: [] };

function encodeWav(chunks, rate) {
  const length = chunks.reduce((n, c) => n + c.length, 0);
  const view = new DataView(new ArrayBuffer(44 + 2 * length));
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * length, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, 2 * length, true);
  let offset = 44;
  for (const chunk of chunks) for (const sample of chunk) {
    view.setInt16(offset, Math.max(-1, Math.min(1, sample)) * 0x7fff, true); offset += 2;
  }
  return new Blob([view], { type: "audio/wav" });
}

async function toggleRecording() {
  const button = $("record");
  if (recorder.stream) {
    recorder.node.disconnect();
    recorder.stream.getTracks().forEach((t) => t.stop());
    const wav = encodeWav(recorder.chunks, recorder.context.sampleRate);
    await recorder.context.close();
    Object.assign(recorder, { stream: null, context: null, node: null, chunks: [] });
    button.classList.remove("on"); button.textContent = "● Record";
    await transcribe(wav);
    return;
  }
  try {
    recorder.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) { status("No microphone: " + error.message); return; }
  recorder.context = new AudioContext();
  const source = recorder.context.createMediaStreamSource(recorder.stream);
  recorder.node = recorder.context.createScriptProcessor(4096, 1, 1);
  recorder.node.onaudioprocess = (event) => recorder.chunks.push(new Float32Array(event.inputBuffer.getChannelData(0)));
  source.connect(recorder.node); recorder.node.connect(recorder.context.destination);
  button.classList.add("on"); button.textContent = "■ Stop";
  status("Recording… press Stop when done.");
}

async function transcribe(wav) {
  const form = new FormData();
  form.append("file", wav, "question.wav");
  status("Transcribing…");
  try {
    const result = await post("/v1/audio/transcriptions", form);
    $("question").value = result.text;
    status(result.text ? "Check the transcribed question, then Ask." : "Nothing recognised; try again.");
  } catch (error) { status(error.message); }
}

$("record").addEventListener("click", toggleRecording);
window.medlens = { transcribe, showResult };
