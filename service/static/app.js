"use strict";

const $ = (id) => document.getElementById(id);
let current = null; // the File being shown

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

async function loadModels() {
  const response = await fetch("/v1/models");
  if (!response.ok) throw new Error(await errorText(response));
  const models = await response.json();
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
  return fetch(`${path}?${params}`, { method: "POST", body });
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
  if (!current) return;
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
  current = file;
  analyse();
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
}

wire();
loadModels().catch((error) => setStatus(`Error: ${error.message}`, true));
