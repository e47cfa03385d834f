// Tingxie dashboard: plain JavaScript over the public API, no build step, no external assets.
"use strict";

const API = "/api/v1";
const REFRESH_MS = 3000;
const TASK_REFRESH_MS = 1000;
let currentTask = null;
let currentStatus = null;
let subtitleFormat = "srt";
let subtitlesFor = null;

const $ = (id) => document.getElementById(id);

function text(id, value) {
  $(id).textContent = value === null || value === undefined || value === "" ? "–" : String(value);
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (value < 60) return `${value.toFixed(1)} s`;
  if (value < 3600) return `${(value / 60).toFixed(1)} min`;
  return `${(value / 3600).toFixed(2)} h`;
}

function time(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleTimeString();
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail || detail;
    } catch (_) { /* not JSON */ }
    throw new Error(`${response.status}: ${detail}`);
  }
  return response.json();
}

function cell(row, value, className) {
  const td = document.createElement("td");
  if (value instanceof Node) td.appendChild(value);
  else td.textContent = value === null || value === undefined || value === "" ? "–" : String(value);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function badge(status) {
  const span = document.createElement("span");
  span.className = `badge ${status}`;
  span.textContent = status;
  return span;
}

function emptyRow(body, columns, message) {
  body.replaceChildren();
  const row = body.insertRow();
  const td = cell(row, message, "muted");
  td.colSpan = columns;
}

async function refreshStats() {
  const stats = await getJson(`${API}/stats`);
  text("q-high", stats.queue_depth.high);
  text("q-normal", stats.queue_depth.normal);
  text("q-low", stats.queue_depth.low);
  text("c-processing", stats.counts.processing);
  const hour = stats.last_hour;
  text("t-completed", hour.completed);
  text("t-failed", hour.failed);
  text("t-audio", seconds(hour.audio_seconds));
  text("t-rtf", hour.mean_real_time_factor === null ? "–" : hour.mean_real_time_factor.toFixed(3));
}

async function refreshWorkers() {
  const workers = await getJson(`${API}/workers`);
  const body = $("workers-body");
  if (!workers.length) return emptyRow(body, 5, "No live workers 无存活工作进程");
  body.replaceChildren();
  for (const worker of workers) {
    const row = body.insertRow();
    cell(row, worker.id);
    cell(row, worker.role);
    cell(row, worker.devices.join(", "));
    cell(row, worker.running_tasks.length);
    cell(row, `${worker.heartbeat_age_seconds.toFixed(1)} s`);
  }
}

async function refreshRecent() {
  const page = await getJson(`${API}/tasks?limit=15`);
  const body = $("recent-body");
  if (!page.items.length) return emptyRow(body, 7, "No tasks yet 暂无任务");
  body.replaceChildren();
  for (const task of page.items) {
    const row = body.insertRow();
    row.dataset.taskId = task.id;
    cell(row, task.id.slice(0, 8)).title = task.id;
    cell(row, task.file_name || task.file_url);
    cell(row, badge(task.status));
    cell(row, `${Math.round(task.progress)} %`);
    cell(row, task.model);
    cell(row, seconds(task.duration));
    cell(row, time(task.created_at));
    row.addEventListener("click", () => showTask(task.id));
  }
}

async function refreshAll() {
  const results = await Promise.allSettled([refreshStats(), refreshWorkers(), refreshRecent(), refreshTask()]);
  const failed = results.filter((r) => r.status === "rejected");
  $("refreshed").textContent = failed.length
    ? `Refresh failed 刷新失败: ${failed[0].reason.message}`
    : `Updated 更新于 ${new Date().toLocaleTimeString()}`;
}

async function loadModels() {
  try {
    const pool = await getJson(`${API}/models`);
    const select = $("upload-model");
    for (const model of pool.models.filter((m) => m.allowed)) {
      const option = document.createElement("option");
      option.value = model.name;
      option.textContent = model.default ? `${model.name} (default 默认)` : model.name;
      select.appendChild(option);
    }
  } catch (_) { /* the default model is used */ }
}

async function showTask(id) {
  currentTask = id;
  currentStatus = null;
  subtitlesFor = null;
  $("task-view").hidden = false;
  text("tv-id", id);
  $("tv-transcript").textContent = "";
  $("tv-subtitles").textContent = "";
  await refreshTask();
}

async function refreshTask() {
  if (!currentTask) return;
  const id = currentTask;
  const task = await getJson(`${API}/tasks/${encodeURIComponent(id)}`);
  if (id !== currentTask) return;
  const finished = task.status === "completed" || task.status === "failed";
  if (finished && currentStatus !== null && currentStatus !== task.status) {
    // Just finished: show it in the counters and the list now, not at the next refresh.
    Promise.allSettled([refreshStats(), refreshRecent()]);
  }
  currentStatus = task.status;
  const status = $("tv-status");
  status.className = `badge ${task.status}`;
  status.textContent = task.status;
  text("tv-file", task.file_name || task.file_url);
  text("tv-model", `${task.engine} / ${task.model}`);
  text("tv-language", task.language);
  text("tv-duration", seconds(task.duration));
  text("tv-processing", task.processing_time === null ? "–" : seconds(task.processing_time));
  $("tv-progress").style.width = `${task.status === "completed" ? 100 : task.progress}%`;
  const error = $("tv-error");
  error.hidden = !task.error;
  error.textContent = task.error || "";
  if (task.status === "completed" && task.result) {
    $("tv-transcript").textContent = task.result.text;
    if (subtitlesFor !== `${id}.${subtitleFormat}`) await loadSubtitles(id);
  } else if (task.status !== "failed") {
    $("tv-transcript").textContent = "…";
  }
}

async function loadSubtitles(id) {
  const response = await fetch(`${API}/tasks/${encodeURIComponent(id)}/subtitles?format=${subtitleFormat}`);
  $("tv-subtitles").textContent = response.ok ? await response.text() : `${response.status} ${response.statusText}`;
  subtitlesFor = `${id}.${subtitleFormat}`;
}

function setupTabs() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", async () => {
      subtitleFormat = tab.dataset.format;
      for (const other of document.querySelectorAll(".tab")) other.classList.toggle("active", other === tab);
      if (currentTask) await loadSubtitles(currentTask);
    });
  }
}

function setupUpload() {
  const form = $("upload-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData();
    for (const [key, value] of new FormData(form).entries()) {
      if (value instanceof File ? value.size > 0 || value.name : value !== "") data.append(key, value);
    }
    const button = $("upload-submit");
    const status = $("upload-status");
    button.disabled = true;
    status.className = "muted";
    status.textContent = "Uploading… 上传中…";
    try {
      const response = await fetch(`${API}/tasks`, { method: "POST", body: data });
      const body = await response.json();
      if (!response.ok) throw new Error(body.detail || response.statusText);
      status.textContent = `Queued 已排队: ${body.id}`;
      form.reset();
      await showTask(body.id);
      await refreshRecent();
    } catch (error) {
      status.className = "error";
      status.textContent = `Upload failed 上传失败: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
}

setupTabs();
setupUpload();
loadModels();
refreshAll();
setInterval(refreshAll, REFRESH_MS);
// A task that is still running is followed more closely.
setInterval(() => {
  if (currentTask && (currentStatus === "queued" || currentStatus === "processing")) refreshTask().catch(() => {});
}, TASK_REFRESH_MS);
