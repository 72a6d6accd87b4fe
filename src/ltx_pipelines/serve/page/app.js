// The page of the LTX-2 server: a form that queues jobs, and the list of jobs with live progress.
// Plain JavaScript, no build step. Everything the server says is put in the page as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { info: null, pipelines: {}, cards: new Map(), events: null };

// ---------------------------------------------------------------- talking to the server

class NeedsKey extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (response.status === 401) throw new NeedsKey();
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const retry = response.headers.get("retry-after");
    const message = body?.detail ?? `${response.status} ${response.statusText}`;
    throw new Error(retry ? `${message} (retry in ${retry} s)` : message);
  }
  return body;
}

async function start() {
  try {
    state.info = await api("/api/info");
  } catch (error) {
    if (error instanceof NeedsKey) return showLogin();
    throw error;
  }
  $("login").hidden = true;
  $("main").hidden = false;
  showServer(state.info);
  buildForm(state.info);
  await loadJobs();
  followEvents();
}

function showLogin() {
  $("login").hidden = false;
  $("main").hidden = true;
  $("login-form").onsubmit = async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      await api("/api/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ api_key: $("api-key").value }),
      });
      await start();
    } catch (error) {
      $("login-error").textContent = error instanceof NeedsKey ? "Wrong API key." : error.message;
    }
  };
}

function showServer(info) {
  $("server-info").textContent = `${info.name} ${info.version} · workers: ${info.workers.map((w) => w.device).join(", ")}`;
  if (info.smoke_model) {
    $("smoke-banner").hidden = false;
    $("smoke-text").textContent = info.smoke_model;
  }
}

// ---------------------------------------------------------------- the form

function buildForm(info) {
  const select = $("pipeline");
  select.replaceChildren();
  for (const pipeline of info.pipelines) {
    state.pipelines[pipeline.name] = pipeline;
    const option = new Option(pipeline.available ? pipeline.name : `${pipeline.name} (unavailable)`, pipeline.name);
    option.disabled = !pipeline.available;
    select.add(option);
  }
  select.value = info.default_pipeline;
  select.onchange = () => showPipeline(select.value);
  const defaults = info.form_defaults;
  for (const key of ["width", "height", "num_frames", "frame_rate", "num_inference_steps"]) {
    if (defaults[key] !== null && defaults[key] !== undefined) $(key).value = defaults[key];
  }
  $("add-image").onclick = () => addImageRow();
  $("job-form").onsubmit = submitJob;
  showPipeline(select.value);
}

function currentPipeline() {
  return state.pipelines[$("pipeline").value];
}

function showPipeline(name) {
  const pipeline = state.pipelines[name];
  $("pipeline-summary").textContent = pipeline.available
    ? `${pipeline.summary} Model: ${pipeline.model}.`
    : `Unavailable: start the server with ${pipeline.missing.join(", ")}.`;
  const shown = {
    guided: pipeline.guided,
    geometry: pipeline.takes_geometry,
    images: pipeline.takes_images,
    video: pipeline.media.includes("video"),
    references: pipeline.media.includes("references"),
    audio: pipeline.media.includes("audio"),
    hq: pipeline.hq_strengths,
  };
  for (const element of document.querySelectorAll("[data-show]")) element.hidden = !shown[element.dataset.show];
  for (const id of ["width", "height"]) {
    $(id).step = pipeline.size_multiple;
    $(id).min = pipeline.size_multiple;
  }
}

function addImageRow(settings = {}) {
  const row = $("image-row").content.firstElementChild.cloneNode(true);
  if (settings.frame_idx !== undefined) row.querySelector('[data-key="frame_idx"]').value = settings.frame_idx;
  if (settings.strength !== undefined) row.querySelector('[data-key="strength"]').value = settings.strength;
  row.querySelector(".remove").onclick = () => row.remove();
  $("images").append(row);
}

const numberOrNull = (id) => ($(id).value === "" ? null : Number($(id).value));

function guidance(modality) {
  const values = {};
  for (const input of document.querySelectorAll(`tr[data-modality="${modality}"] input`)) {
    if (input.value === "") continue;
    const key = input.dataset.key;
    values[key] = key === "stg_blocks" ? input.value.split(/[\s,]+/).filter(Boolean).map(Number) : Number(input.value);
  }
  return Object.keys(values).length ? values : null;
}

// The request JSON and the files of the form, for the chosen pipeline only.
function collectRequest() {
  const pipeline = currentPipeline();
  const request = { pipeline: pipeline.name, prompt: $("prompt").value.trim(), seed: Number($("seed").value || 0) };
  const files = [];
  const put = (key, value) => { if (value !== null && value !== "") request[key] = value; };
  if ($("enhance_prompt").checked) request.enhance_prompt = true;
  if (pipeline.takes_geometry) {
    for (const key of ["width", "height", "num_frames", "frame_rate"]) put(key, numberOrNull(key));
  }
  if (pipeline.guided) {
    put("negative_prompt", $("negative_prompt").value.trim());
    put("num_inference_steps", numberOrNull("num_inference_steps"));
    put("video_guidance", guidance("video"));
    put("audio_guidance", guidance("audio"));
    put("denoising_loop", $("denoising_loop").value);
  }
  if (pipeline.hq_strengths) {
    put("distilled_lora_strength_stage_1", numberOrNull("distilled_lora_strength_stage_1"));
    put("distilled_lora_strength_stage_2", numberOrNull("distilled_lora_strength_stage_2"));
  }
  if (pipeline.takes_images) {
    const images = [];
    for (const row of $("images").querySelectorAll(".image-row")) {
      const file = row.querySelector('[data-key="file"]').files[0];
      if (!file) continue;
      files.push([`image_${images.length}`, file]);
      images.push({
        frame_idx: Number(row.querySelector('[data-key="frame_idx"]').value || 0),
        strength: Number(row.querySelector('[data-key="strength"]').value || 1),
      });
    }
    if (images.length) request.images = images;
  }
  if (pipeline.media.includes("video")) {
    request.start_time = numberOrNull("start_time");
    request.end_time = numberOrNull("end_time");
    request.regenerate_video = $("regenerate_video").checked;
    request.regenerate_audio = $("regenerate_audio").checked;
    if ($("video").files[0]) files.push(["video", $("video").files[0]]);
  }
  if (pipeline.media.includes("references")) {
    request.references = [{ strength: numberOrNull("reference_strength") ?? 1 }];
    put("conditioning_attention_mask", numberOrNull("conditioning_attention_mask"));
    if ($("skip_stage_2").checked) request.skip_stage_2 = true;
    if ($("reference_0").files[0]) files.push(["reference_0", $("reference_0").files[0]]);
  }
  if (pipeline.media.includes("audio")) {
    put("audio_start_time", numberOrNull("audio_start_time"));
    put("audio_max_duration", numberOrNull("audio_max_duration"));
    if ($("audio").files[0]) files.push(["audio", $("audio").files[0]]);
  }
  return { request, files };
}

async function submitJob(event) {
  event.preventDefault();
  $("form-error").textContent = "";
  const { request, files } = collectRequest();
  if (!request.prompt) {
    $("form-error").textContent = "Write a prompt first.";
    return;
  }
  const body = new FormData();
  body.append("request", JSON.stringify(request));
  for (const [role, file] of files) body.append(role, file, file.name);
  $("submit").disabled = true;
  try {
    showJob(await api("/api/jobs", { method: "POST", body }));
  } catch (error) {
    if (error instanceof NeedsKey) return showLogin();
    $("form-error").textContent = error.message;
  } finally {
    $("submit").disabled = false;
  }
}

// Put a past job's settings back into the form (uploads have to be chosen again).
function editFrom(job) {
  const request = job.request;
  $("pipeline").value = request.pipeline;
  showPipeline(request.pipeline);
  $("prompt").value = request.prompt ?? "";
  $("negative_prompt").value = request.negative_prompt ?? "";
  $("seed").value = request.seed ?? 10;
  for (const key of ["width", "height", "num_frames", "frame_rate", "num_inference_steps", "start_time", "end_time",
    "audio_start_time", "audio_max_duration", "conditioning_attention_mask", "distilled_lora_strength_stage_1",
    "distilled_lora_strength_stage_2"]) {
    if (request[key] !== undefined && request[key] !== null) $(key).value = request[key];
  }
  for (const modality of ["video", "audio"]) {
    const given = request[`${modality}_guidance`] ?? {};
    for (const input of document.querySelectorAll(`tr[data-modality="${modality}"] input`)) {
      const value = given[input.dataset.key];
      input.value = value === undefined || value === null ? "" : [].concat(value).join(", ");
    }
  }
  $("denoising_loop").value = request.denoising_loop ?? "";
  $("enhance_prompt").checked = Boolean(request.enhance_prompt);
  $("images").replaceChildren();
  for (const image of request.images ?? []) addImageRow(image);
  $("form-error").textContent = job.inputs.length ? `Choose the input files again: ${job.inputs.join(", ")}.` : "";
  $("prompt").focus();
}

// ---------------------------------------------------------------- the jobs

async function loadJobs() {
  const { jobs } = await api("/api/jobs?limit=100");
  for (const job of jobs.reverse()) showJob(job);
}

function followEvents() {
  if (state.events) state.events.close();
  const events = new EventSource("/api/events");
  state.events = events;
  events.addEventListener("job", (event) => showJob(JSON.parse(event.data)));
  events.addEventListener("deleted", (event) => removeJob(JSON.parse(event.data).id));
  // After a reconnect, catch up with what happened while the stream was down.
  let opened = false;
  events.onopen = () => { if (opened) loadJobs().catch(() => {}); opened = true; };
}

function describe(job) {
  const g = job.geometry;
  const r = job.request;
  const parts = [`${g.width}x${g.height}`, `${g.num_frames} frames at ${g.frame_rate} fps`, `seed ${r.seed ?? 10}`];
  if (r.num_inference_steps) parts.push(`${r.num_inference_steps} steps`);
  if (job.inputs.length) parts.push(`inputs: ${job.inputs.join(", ")}`);
  return parts.join(" · ");
}

function whereItIs(job) {
  if (job.status === "queued") return "Waiting in the queue";
  if (job.status !== "running") return "";
  const parts = [job.stage ?? "starting"];
  if (job.step !== null && job.total !== null) parts.push(`step ${job.step}/${job.total}`);
  if (job.eta_seconds !== null) parts.push(`about ${Math.max(1, Math.round(job.eta_seconds))} s left`);
  if (job.cancel_requested) parts.push("cancelling");
  return parts.join(" · ");
}

function showJob(job) {
  let card = state.cards.get(job.id);
  if (!card) {
    card = $("job-card").content.firstElementChild.cloneNode(true);
    card.dataset.jobId = job.id;
    card.querySelector('[data-action="cancel"]').onclick = () => act(`/api/jobs/${job.id}/cancel`, "POST", showJob);
    card.querySelector('[data-action="rerun"]').onclick = () => act(`/api/jobs/${job.id}/rerun`, "POST", showJob);
    card.querySelector('[data-action="delete"]').onclick = () =>
      act(`/api/jobs/${job.id}`, "DELETE", () => removeJob(job.id));
    state.cards.set(job.id, card);
    $("jobs").prepend(card);  // newest first
    $("no-jobs").hidden = true;
  }
  card.querySelector('[data-action="edit"]').onclick = () => editFrom(job);
  card.dataset.status = job.status;
  card.querySelector(".status").textContent = job.status;
  card.querySelector(".pipeline").textContent = job.pipeline;
  card.querySelector(".created").textContent = new Date(job.created_at * 1000).toLocaleString();
  card.querySelector(".prompt").textContent = job.request.prompt;
  card.querySelector(".params").textContent = describe(job);
  const percent = Math.round(job.progress * 100);
  const bar = card.querySelector(".bar");
  bar.setAttribute("aria-valuenow", String(percent));
  bar.firstElementChild.style.width = `${percent}%`;
  card.querySelector(".where").textContent = whereItIs(job);
  card.querySelector(".job-error").textContent = job.error && job.status !== "completed" ? job.error : "";
  const active = job.status === "queued" || job.status === "running";
  card.querySelector('[data-action="cancel"]').hidden = !active;
  card.querySelector('[data-action="delete"]').hidden = job.status === "running";
  const download = card.querySelector(".download");
  download.hidden = !job.video_url;
  if (job.video_url) {
    download.href = job.video_url;
    const player = card.querySelector(".player");
    if (!player.querySelector("video")) {
      const video = document.createElement("video");
      Object.assign(video, { controls: true, loop: true, muted: true, playsInline: true, preload: "metadata" });
      video.src = job.video_url;
      player.append(video);
    }
  }
}

function removeJob(id) {
  state.cards.get(id)?.remove();
  state.cards.delete(id);
  $("no-jobs").hidden = state.cards.size > 0;
}

async function act(path, method, then) {
  try {
    then(await api(path, { method }));
  } catch (error) {
    if (error instanceof NeedsKey) return showLogin();
    alert(error.message);
  }
}

start().catch((error) => {
  $("main").hidden = false;
  $("form-error").textContent = `The server did not answer: ${error.message}`;
});
