"use strict";

const $ = (id) => document.getElementById(id);
let current = null; // the File being shown
let live = null; // the webcam session while it runs: { stream, answers }

// Webcam frames are scaled down to this longest side before upload: smaller uploads and a faster detector, and a
// face that fills a webcam frame is still far larger than the 48x48 pixels the models see.
const LIVE_MAX_SIDE = 640;
const LIVE_JPEG_QUALITY = 0.85;
// frames/s counts the answers of about the last second.
const FPS_WINDOW_MS = 1000;
// After a failed frame the next one waits this long, so that a failing server is not asked again at once.
const RETRY_MS = 1000;

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function errorText(response) {
  try {
    const body = await response.json();
    return `${body.error.message} (${body.error.code})`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

// A server with API keys answers 401 without one: the page then asks for the key and sends it with every call.
function keyHeaders() {
  const key = $("api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

async function loadModels() {
  const response = await fetch("/v1/models", { headers: keyHeaders() });
  if (response.status === 401) {
    $("key-field").hidden = false;
    setStatus(`This server needs an API key: enter it above. ${await errorText(response)}`, true);
    return;
  }
  if (!response.ok) throw new Error(await errorText(response));
  const models = await response.json();
  $("size").replaceChildren();
  $("detector").replaceChildren();
  for (const entry of models.models) {
    const option = new Option(`${entry.size} · ${entry.family} (v${entry.default_version})`, entry.name);
    option.selected = entry.default && entry.size === models.default_size;
    $("size").add(option);
  }
  for (const name of models.detectors) {
    $("detector").add(new Option(name, name, false, name === models.default_detector));
  }
  if (!models.models.length) throw new Error("no model is loaded on the server");
  setStatus("Ready: choose an image.");
}

function query() {
  return new URLSearchParams({ model: $("size").value, detector: $("detector").value });
}

function post(path, file, params) {
  const body = new FormData();
  body.append("image", file);
  return fetch(`${path}?${params}`, { method: "POST", body, headers: keyHeaders() });
}

function renderFaces(prediction) {
  const results = $("results");
  results.replaceChildren();
  const model = prediction.model;
  const summary = document.createElement("p");
  summary.textContent = prediction.no_face
    ? "No face found."
    : `${prediction.faces.length} face(s), model ${model.name} v${model.version}, ` +
      `${prediction.timing.total_ms.toFixed(1)} ms`;
  results.append(summary);
  prediction.faces.forEach((face, index) => {
    const card = document.createElement("div");
    card.className = "face";
    const title = document.createElement("h2");
    title.textContent = `Face ${index + 1}: ${face.expression} ${(face.probability * 100).toFixed(0)}%`;
    card.append(title);
    for (const [label, p] of Object.entries(face.probabilities)) {
      const row = document.createElement("div");
      row.className = "prob";
      const name = document.createElement("span");
      name.textContent = label;
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = `${(p * 100).toFixed(1)}%`;
      const value = document.createElement("span");
      value.className = "num";
      value.textContent = `${(p * 100).toFixed(1)}%`;
      row.append(name, bar, value);
      card.append(row);
    }
    results.append(card);
  });
}

async function analyse() {
  if (!current || live) return;
  setStatus(`Analysing ${current.name}…`);
  const params = query();
  try {
    const [image, prediction] = await Promise.all([
      post("/v1/annotate", current, params),
      post("/v1/predict", current, params),
    ]);
    if (!image.ok) throw new Error(await errorText(image));
    if (!prediction.ok) throw new Error(await errorText(prediction));
    const previous = $("annotated").src;
    $("annotated").src = URL.createObjectURL(await image.blob());
    if (previous.startsWith("blob:")) URL.revokeObjectURL(previous);
    renderFaces(await prediction.json());
    $("output").hidden = false;
    setStatus(`Done: ${current.name}`);
  } catch (error) {
    setStatus(`Error: ${error.message}`, true);
  }
}

function choose(file) {
  stopWebcam();
  current = file;
  analyse();
}

function cameraError(error) {
  switch (error.name) {
    case "NotAllowedError":
      return "permission to use the camera was refused";
    case "NotFoundError":
    case "OverconstrainedError":
      return "no camera found";
    case "NotReadableError":
      return "the camera is in use by another program";
    default:
      return error.message;
  }
}

function showLive(on) {
  $("live").hidden = !on;
  $("start").hidden = on;
  $("stop").hidden = !on;
  if (on) $("output").hidden = true;
}

async function startWebcam() {
  if (live) return;
  // Browsers give only secure pages (https, or http on localhost) navigator.mediaDevices.
  if (!navigator.mediaDevices?.getUserMedia) {
    setStatus("Error: this browser gives the page no camera (it needs https or localhost)", true);
    return;
  }
  setStatus("Starting the webcam…");
  const session = { stream: null, answers: [] };
  live = session;
  try {
    session.stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    if (live !== session) throw new DOMException("stopped while starting", "AbortError");
    // A camera unplugged or taken away ends its track: stop as if asked to, and say so.
    session.stream.getVideoTracks()[0]?.addEventListener("ended", () => {
      if (live !== session) return;
      stopWebcam();
      setStatus("Error: the camera stopped sending pictures", true);
    });
    $("video").srcObject = session.stream;
    await $("video").play();
  } catch (error) {
    session.stream?.getTracks().forEach((track) => track.stop());
    if (live === session) {
      live = null;
      showLive(false);
      setStatus(`Error: ${cameraError(error)}`, true);
    }
    return;
  }
  $("fps").textContent = "– frames/s";
  $("live-faces").textContent = "waiting for the first answer";
  const overlay = $("overlay");
  overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height); // the last session's boxes
  showLive(true);
  setStatus("Live");
  pump(session);
}

function stopWebcam() {
  if (!live) return;
  live.stream?.getTracks().forEach((track) => track.stop());
  live = null;
  $("video").srcObject = null;
  showLive(false);
  setStatus("Webcam stopped.");
}

// Resolves when the video shows a new frame, so that no frame is sent twice.
function nextVideoFrame(video) {
  return new Promise((resolve) => {
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(() => resolve());
    else requestAnimationFrame(() => resolve());
  });
}

function grabFrame(video) {
  const scale = Math.min(1, LIVE_MAX_SIDE / Math.max(video.videoWidth, video.videoHeight));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve, reject) => {
    const done = (blob) => {
      if (blob) resolve(new File([blob], "frame.jpg", { type: blob.type }));
      else reject(new Error("the frame could not be encoded"));
    };
    canvas.toBlob(done, "image/jpeg", LIVE_JPEG_QUALITY);
  });
}

function faceLabel(face) {
  return `${face.expression} ${(face.probability * 100).toFixed(0)}%`;
}

// The boxes are drawn in the uploaded frame's pixels; CSS stretches the overlay over the video like the video itself.
function drawFaces(prediction) {
  const overlay = $("overlay");
  overlay.width = prediction.image.width;
  overlay.height = prediction.image.height;
  const style = getComputedStyle(overlay);
  const context = overlay.getContext("2d");
  context.strokeStyle = context.fillStyle = style.color;
  context.lineWidth = Math.max(2, overlay.width / 200);
  context.font = style.font;
  context.textBaseline = "bottom";
  const lineHeight = parseFloat(style.fontSize);
  for (const face of prediction.faces) {
    const { x, y, width, height } = face.box;
    context.strokeRect(x, y, width, height);
    context.fillText(faceLabel(face), x, Math.max(y - 4, lineHeight)); // above the box, or at the top edge
  }
}

function countAnswer(session) {
  const now = performance.now();
  const answers = session.answers;
  answers.push(now);
  // Keep one answer older than the window so that a server slower than one answer a second still gets a rate.
  while (answers.length > 2 && answers[1] < now - FPS_WINDOW_MS) answers.shift();
  if (answers.length < 2) return;
  const perSecond = ((answers.length - 1) * 1000) / (now - answers[0]);
  $("fps").textContent = `${perSecond.toFixed(1)} frames/s`;
}

function showAnswer(prediction, session) {
  drawFaces(prediction);
  countAnswer(session);
  const model = prediction.model;
  const faces = prediction.faces.map(faceLabel);
  $("live-faces").textContent =
    `${prediction.no_face ? "no face" : faces.join(", ")} · model ${model.name} v${model.version} · ` +
    `${prediction.timing.total_ms.toFixed(1)} ms`;
  setStatus("Live");
}

// One request in flight: the next frame is taken when the answer to the last one has arrived.
async function pump(session) {
  const video = $("video");
  while (live === session) {
    await nextVideoFrame(video);
    if (live !== session) return;
    try {
      const response = await post("/v1/predict", await grabFrame(video), query());
      if (!response.ok) throw new Error(await errorText(response));
      const prediction = await response.json();
      if (live === session) showAnswer(prediction, session);
    } catch (error) {
      if (live !== session) return;
      setStatus(`Error: ${error.message} (trying again)`, true);
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
}

function wire() {
  const drop = $("drop");
  $("file").addEventListener("change", (event) => event.target.files[0] && choose(event.target.files[0]));
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files[0]) choose(event.dataTransfer.files[0]);
  });
  $("size").addEventListener("change", analyse);
  $("detector").addEventListener("change", analyse);
  $("start").addEventListener("click", startWebcam);
  $("stop").addEventListener("click", stopWebcam);
  $("api-key").addEventListener("change", () =>
    loadModels().catch((error) => setStatus(`Error: ${error.message}`, true)),
  );
}

wire();
loadModels().catch((error) => setStatus(`Error: ${error.message}`, true));
