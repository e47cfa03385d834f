// Tingxie dashboard: plain JavaScript over the public API, no build step, no external assets.
"use strict";

const API = "/api/v1";
const REFRESH_MS = 3000;
const TASK_REFRESH_MS = 1000;
let currentTask = null;
let currentStatus = null;
let subtitleFormat = "srt";
let subtitlesFor = null;
// The task view's player: which task's media it holds, and the object URL to release.
let mediaFor = null;
let mediaUrl = null;
let resultFor = null;
let downloadName = "transcript";
// The transcript's cues, in time order: {start, end, element}.
let cues = [];
let currentCue = null;
// The server answered 401: polling waits until a key is entered.
let keyNeeded = false;
// Stats and workers answer 403 to keys that are not admin keys: they are then not polled
// until another key is entered.
let adminViews = true;

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

function clock(value) {
  const total = Math.max(0, Math.floor(value));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

function time(iso) {
  if (!iso) return "–";
  return new Date(iso).toLocaleTimeString();
}

// API key (AUTH__ENABLED=true): kept in localStorage, sent as X-API-Key on every API call.
const KEY_STORAGE = "tingxie.apiKey";
const KEY_REQUIRED = "This server requires an API key (401). Enter one to continue. 此服务器需要 API 密钥（401），请输入后继续。";
const KEY_REJECTED = "The saved API key was rejected (401). Enter a valid key. 已保存的 API 密钥被拒绝（401），请输入有效的密钥。";

class KeyRequiredError extends Error {}
class ForbiddenError extends Error {}

function storedKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch (_) {
    return "";
  }
}

function storeKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch (_) { /* storage disabled: the key is not kept */ }
  showKeyState();
}

function showKeyState() {
  const button = $("key-button");
  const set = storedKey() !== "";
  button.classList.toggle("set", set);
  button.textContent = set ? "API key 密钥 ✓" : "API key 密钥";
  button.title = set ? "An API key is saved 已保存 API 密钥" : "No API key saved 未保存 API 密钥";
}

function askForKey(message) {
  const dialog = $("key-dialog");
  const note = $("key-message");
  note.textContent = message;
  note.className = "error";
  const refreshed = $("refreshed");
  refreshed.className = "error";
  refreshed.textContent = "API key required 需要 API 密钥";
  if (!dialog.open) {
    $("key-input").value = "";
    dialog.showModal();
    $("key-input").focus();
  }
}

async function apiFetch(path, options = {}) {
  const key = storedKey();
  const headers = new Headers(options.headers || {});
  if (key) headers.set("X-API-Key", key);
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    // An answer to a key that has been replaced since is not the new key's fault.
    if (key === storedKey()) {
      keyNeeded = true;
      askForKey(key ? KEY_REJECTED : KEY_REQUIRED);
    }
    throw new KeyRequiredError("API key required 需要 API 密钥 (401)");
  }
  return response;
}

function setupKeyDialog() {
  const dialog = $("key-dialog");
  $("key-button").addEventListener("click", () => {
    const note = $("key-message");
    note.className = "muted";
    note.textContent = storedKey()
      ? "An API key is saved in this browser. 本浏览器已保存 API 密钥。"
      : "No API key saved. Needed only when the server has AUTH__ENABLED=true. 未保存 API 密钥，仅在服务器开启 AUTH__ENABLED=true 时需要。";
    $("key-input").value = "";
    if (!dialog.open) dialog.showModal();
    $("key-input").focus();
  });
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) {
      $("key-message").className = "error";
      $("key-message").textContent = "Enter a key 请输入密钥";
      return;
    }
    storeKey(key);
    keyNeeded = false;
    resetAdminViews();
    dialog.close();
    $("refreshed").className = "muted";
    $("refreshed").textContent = "Checking the key… 正在验证密钥…";
    loadModels();
    refreshAll();
  });
  $("key-clear").addEventListener("click", () => {
    storeKey("");
    $("key-input").value = "";
    $("key-message").className = "muted";
    $("key-message").textContent = "The key was removed from this browser. 已从本浏览器移除密钥。";
    keyNeeded = false;
    resetAdminViews();
    refreshAll();
  });
  $("key-cancel").addEventListener("click", () => dialog.close());
  showKeyState();
}

async function getJson(path) {
  const response = await apiFetch(path, { headers: { Accept: "application/json" } });
  if (response.status === 403) throw new ForbiddenError("Needs an admin key 需要管理员密钥 (403)");
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

// Shown instead of the stats and workers when the key is not an admin key.
function showAdminOnly() {
  adminViews = false;
  for (const id of ["q-high", "q-normal", "q-low", "c-processing", "t-completed", "t-failed", "t-audio", "t-rtf"]) {
    text(id, null);
  }
  $("admin-note").hidden = false;
  emptyRow($("workers-body"), 5, "Needs an admin key 需要管理员密钥");
}

function resetAdminViews() {
  adminViews = true;
  $("admin-note").hidden = true;
}

async function adminJson(path) {
  try {
    return await getJson(path);
  } catch (error) {
    if (error instanceof ForbiddenError) {
      showAdminOnly();
      return null;
    }
    throw error;
  }
}

async function refreshStats() {
  if (!adminViews) return;
  const stats = await adminJson(`${API}/stats`);
  if (stats === null) return;
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
  if (!adminViews) return;
  const workers = await adminJson(`${API}/workers`);
  if (workers === null) return;
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
  if (keyNeeded) return; // the key prompt says why
  const results = await Promise.allSettled([refreshStats(), refreshWorkers(), refreshRecent(), refreshTask()]);
  const failed = results.filter((r) => r.status === "rejected");
  if (failed.some((r) => r.reason instanceof KeyRequiredError)) return;
  const refreshed = $("refreshed");
  refreshed.className = failed.length ? "error" : "muted";
  refreshed.textContent = failed.length
    ? `Refresh failed 刷新失败: ${failed[0].reason.message}`
    : `Updated 更新于 ${new Date().toLocaleTimeString()}`;
}

async function loadModels() {
  try {
    const pool = await getJson(`${API}/models`);
    const select = $("upload-model");
    while (select.options.length > 1) select.remove(1); // keep "default"
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
  resultFor = null;
  $("task-view").hidden = false;
  text("tv-id", id);
  renderPending("");
  $("tv-subtitles").textContent = "";
  releaseMedia();
  await refreshTask();
}

// --- Media player, with the transcript's current cue highlighted --------------------------------

function releaseMedia() {
  const player = $("tv-player");
  player.pause();
  player.removeAttribute("src");
  player.load();
  if (mediaUrl) URL.revokeObjectURL(mediaUrl);
  mediaUrl = null;
  mediaFor = null;
  $("tv-media").hidden = true;
  mediaNote("");
}

function mediaNote(message) {
  const note = $("tv-media-note");
  note.hidden = !message;
  note.textContent = message;
}

async function loadMedia(id) {
  mediaFor = id;
  $("tv-media").hidden = false;
  const player = $("tv-player");
  const url = `${API}/tasks/${encodeURIComponent(id)}/media`;
  if (!storedKey()) {
    player.src = url; // streamed with range requests
    return;
  }
  // A media element cannot send the key: fetch the file with it, then play it from memory.
  const response = await apiFetch(url);
  if (id !== currentTask) return;
  if (!response.ok) {
    mediaNote(`Media unavailable 媒体不可用 (${response.status})`);
    return;
  }
  mediaUrl = URL.createObjectURL(await response.blob());
  if (id === currentTask) player.src = mediaUrl;
}

function setupPlayer() {
  const player = $("tv-player");
  player.addEventListener("timeupdate", highlightCue);
  player.addEventListener("seeked", highlightCue);
  player.addEventListener("error", () => {
    if (player.getAttribute("src")) mediaNote("Media unavailable (no longer kept?) 媒体不可用（可能已过保留期）");
  });
}

function highlightCue() {
  const now = $("tv-player").currentTime;
  const cue = cues.find((c) => c.start <= now && now < c.end) || null;
  if (cue === currentCue) return;
  if (currentCue) currentCue.element.classList.remove("current");
  currentCue = cue;
  if (cue) {
    cue.element.classList.add("current");
    cue.element.scrollIntoView({ block: "nearest" });
  }
}

function seek(start) {
  const player = $("tv-player");
  if (!player.getAttribute("src")) return;
  player.currentTime = start;
  player.play().catch(() => { /* autoplay refused: the position is still set */ });
}

function speakerChip(label) {
  const chip = document.createElement("span");
  chip.className = "speaker";
  chip.textContent = label;
  // Neighbouring labels (A, B, …) get hues far apart: steps of the golden angle.
  let hash = 0;
  for (const char of label) hash = (hash * 31 + char.codePointAt(0)) % 9973;
  chip.style.setProperty("--hue", String(Math.round((hash * 137.508) % 360)));
  return chip;
}

function renderPending(message) {
  cues = [];
  currentCue = null;
  const item = document.createElement("li");
  item.className = "pending";
  item.textContent = message;
  $("tv-transcript").replaceChildren(item);
  $("tv-speaker-chips").hidden = true;
}

function renderTranscript(result) {
  const list = $("tv-transcript");
  list.replaceChildren();
  cues = [];
  currentCue = null;
  const speakers = [];
  for (const segment of result.segments || []) {
    const item = document.createElement("li");
    item.dataset.start = String(segment.start);
    item.dataset.end = String(segment.end);
    const at = document.createElement("span");
    at.className = "at";
    at.textContent = clock(segment.start);
    item.append(at);
    if (segment.speaker) {
      item.append(speakerChip(segment.speaker));
      if (!speakers.includes(segment.speaker)) speakers.push(segment.speaker);
    }
    const words = document.createElement("span");
    words.textContent = segment.text.trim();
    item.append(words);
    item.title = "Play from here 从此处播放";
    item.addEventListener("click", () => seek(segment.start));
    list.append(item);
    cues.push({ start: segment.start, end: segment.end, element: item });
  }
  if (!cues.length) renderPending(result.text || "");
  const chips = $("tv-speaker-chips");
  chips.replaceChildren(...speakers.map(speakerChip));
  chips.hidden = speakers.length === 0;
  highlightCue();
}

async function download(format) {
  const id = currentTask;
  if (!id) return;
  const response = await apiFetch(`${API}/tasks/${encodeURIComponent(id)}/subtitles?format=${format}`);
  if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = `${downloadName}.${format}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function setupDownloads() {
  for (const button of document.querySelectorAll("button[data-download]")) {
    button.addEventListener("click", () => {
      download(button.dataset.download).catch((error) => {
        const refreshed = $("refreshed");
        refreshed.className = "error";
        refreshed.textContent = `Download failed 下载失败: ${error.message}`;
      });
    });
  }
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
  text("tv-speakers", speakersOf(task));
  text("tv-duration", seconds(task.duration));
  text("tv-processing", task.processing_time === null ? "–" : seconds(task.processing_time));
  $("tv-progress").style.width = `${task.status === "completed" ? 100 : task.progress}%`;
  const error = $("tv-error");
  error.hidden = !task.error;
  error.textContent = task.error || "";
  const name = task.file_name || (task.file_url || "").split("/").pop() || id;
  downloadName = name.replace(/\.[^.]*$/, "") || id;
  const completed = task.status === "completed" && task.result;
  for (const button of document.querySelectorAll("button[data-download]")) button.disabled = !completed;
  if (mediaFor !== id) await loadMedia(id).catch((error) => mediaNote(error.message));
  if (completed) {
    if (resultFor !== id) {
      renderTranscript(task.result);
      resultFor = id;
    }
    if (subtitlesFor !== `${id}.${subtitleFormat}`) await loadSubtitles(id);
  } else if (task.status !== "failed") {
    renderPending("…");
  } else {
    renderPending("");
  }
}

function speakersOf(task) {
  // Diarization options as the task stored them, then the speakers found once completed.
  const options = task.options || {};
  if (!options.diarize) return "off 关闭";
  const bounds = [];
  if (options.num_speakers) bounds.push(`${options.num_speakers}`);
  if (options.min_speakers) bounds.push(`≥${options.min_speakers}`);
  if (options.max_speakers) bounds.push(`≤${options.max_speakers}`);
  const found = task.result && task.result.speakers ? task.result.speakers.join(", ") : "";
  return ["on 开启", bounds.length ? `(${bounds.join(" ")})` : "(auto 自动)", found].filter(Boolean).join(" ");
}

async function loadSubtitles(id) {
  const response = await apiFetch(`${API}/tasks/${encodeURIComponent(id)}/subtitles?format=${subtitleFormat}`);
  $("tv-subtitles").textContent = response.ok ? await response.text() : `${response.status} ${response.statusText}`;
  subtitlesFor = `${id}.${subtitleFormat}`;
}

function setupTabs() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", async () => {
      subtitleFormat = tab.dataset.format;
      for (const other of document.querySelectorAll(".tab")) other.classList.toggle("active", other === tab);
      if (currentTask) await loadSubtitles(currentTask).catch(() => {});
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
      const response = await apiFetch(`${API}/tasks`, { method: "POST", body: data });
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

setupKeyDialog();
setupTabs();
setupUpload();
setupPlayer();
setupDownloads();
loadModels();
refreshAll();
setInterval(refreshAll, REFRESH_MS);
// A task that is still running is followed more closely.
setInterval(() => {
  if (keyNeeded || !currentTask) return;
  if (currentStatus === "queued" || currentStatus === "processing") refreshTask().catch(() => {});
}, TASK_REFRESH_MS);
