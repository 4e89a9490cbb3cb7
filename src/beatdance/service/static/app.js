// beatdance search page: plain JS over the JSON API of `beatdance serve`.
"use strict";

const $ = (id) => document.getElementById(id);
const fmt = (x, digits) => (x === null || x === undefined ? "-" : Number(x).toFixed(digits));
const span = (match) => {
  const end = match.start_s === null ? null : match.start_s + (match.duration_s || 0);
  return `${fmt(match.start_s, 1)}-${fmt(end, 1)} s`;
};

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function api(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body);
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

async function loadLibrary() {
  const lib = await api("/api/library");
  $("summary").textContent = `${lib.items} items, ${lib.window_s} s windows, model ${lib.model_variant}, ` +
    `hubness ${lib.settings.hubness}; uploads up to ${lib.max_upload_mb} MB`;
  $("upload-file").accept = [...new Set([...lib.upload_extensions.music, ...lib.upload_extensions.dance])].join(",");
  const page = await api("/api/items?limit=1000");
  for (const item of page.items) {
    const option = document.createElement("option");
    option.value = item.id;
    const m = item.music, d = item.dance;
    option.textContent = `${item.id} (${m.source} ${fmt(m.start_s, 1)} s, ${fmt(m.tempo_bpm, 0)} / ${fmt(d.tempo_bpm, 0)} BPM)`;
    $("item-select").appendChild(option);
  }
}

function showResults(result) {
  const q = result.query;
  const what = result.direction === "m2d" ? "dances" : "music";
  $("results-title").textContent = `${what} for the ${q.modality} of ${q.clip_id || q.source} ` +
    `(window at ${fmt(q.start_s, 1)} s, ${fmt(q.tempo_bpm, 0)} BPM; ${(result.seconds * 1000).toFixed(0)} ms)`;
  const body = $("results-table").querySelector("tbody");
  body.replaceChildren();
  for (const match of result.matches) {
    const row = document.createElement("tr");
    const cells = [match.rank, match.id, match.source || "-", span(match),
      fmt(match.score, 4), fmt(match.similarity, 3), fmt(match.beat_alignment, 3),
      `${fmt(match.query_tempo_bpm, 0)} / ${fmt(match.tempo_bpm, 0)}`];
    for (const value of cells) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.appendChild(cell);
    }
    row.addEventListener("click", () => showMatch(match, row));
    body.appendChild(row);
  }
  $("results").hidden = false;
  $("player").hidden = true;
}

function showMatch(match, row) {
  for (const other of row.parentElement.children) other.classList.remove("selected");
  row.classList.add("selected");
  const media = document.createElement(match.media.media_kind);
  media.id = "match-media";
  media.controls = true;
  media.preload = "metadata";
  media.src = `${match.media.media_url}#t=${match.media.media_start_s},${match.media.media_end_s}`;
  $("media-slot").replaceChildren(media);
  $("beat-plot").src = match.plot_url;
  // The item's span in its take (as in the table), not the offsets inside the media file (0-10 s for a
  // dance rendered from keypoints).
  $("player-title").textContent = `#${match.rank} ${match.id}: ${match.modality} ${span(match)}`;
  $("player").hidden = false;
}

async function runSearch(request, label) {
  setStatus(`searching with ${label}\u2026`, false);
  for (const button of document.querySelectorAll("button")) button.disabled = true;
  try {
    const result = await request();
    showResults(result);
    setStatus(`${result.matches.length} matches`, false);
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    for (const button of document.querySelectorAll("button")) button.disabled = false;
  }
}

$("item-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = $("item-select").value;
  const params = new URLSearchParams({ [`${$("item-modality").value}_id`]: id, top: $("item-top").value });
  runSearch(() => api(`/api/search?${params}`), id);
});

$("upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData($("upload-form"));
  runSearch(() => api("/api/search", { method: "POST", body: form }), $("upload-file").files[0].name);
});

loadLibrary().catch((error) => setStatus(`cannot load the library: ${error.message}`, true));
