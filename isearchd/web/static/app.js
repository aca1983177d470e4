// ImgSearch web page: search by text or image, look at results, review duplicates (people.js:
// the People view; video.js: video results). Plain JavaScript, no build step; talks only to this
// server's /api/ (see the README).
"use strict";

const $ = (sel) => document.querySelector(sel);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const state = { db: "default", last: null, items: [], viewing: -1, local: false, queryUrl: null };

function message(text, isError = false) {
  const el = $("#message");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function api(url, options = {}) {
  const response = await fetch(url, { credentials: "same-origin", ...options });
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const why = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
    throw new Error(why);
  }
  return body;
}

// A form's filled-in fields, and the database, as query parameters ("person": one per name of a
// comma-separated list).
function formParams(selector) {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData($(selector))) {
    if (key === "person") {
      String(value).split(",").map((n) => n.trim()).filter(Boolean).forEach((n) => params.append(key, n));
    } else if (String(value).trim() !== "") {
      params.set(key, String(value).trim());
    }
  }
  params.set("db", state.db);
  return params;
}

function baseName(path) {
  const parts = String(path).split("/");
  return parts[parts.length - 1] || path;
}

// -- searching -----------------------------------------------------------------------------------

// query: {kind: "text", text} | {kind: "like", id, path, thumbnail} | {kind: "image", file} |
// {kind: "people"} (the photos of the people named in the filters) | {kind: "person", id, name,
// face} (one person's photos, people.js).
async function runSearch(query) {
  if (query.kind === "person") return showPerson(query);
  state.last = query;
  showTab("search");
  const params = formParams("#filter-form");
  let options = {};
  if (query.kind === "text") {
    params.set("q", query.text);
  } else if (query.kind === "like") {
    params.set("like", String(query.id));
  } else if (query.kind === "people") {
    if (!listable(params)) {
      renderResults([]);
      message("Name someone in Filters › People, give words in Filters › Words, or type a description", true);
      return;
    }
  } else {
    const form = new FormData();
    form.append("image", query.file, query.file.name || "pasted image");
    options = { method: "POST", body: form, headers: { "X-CSRF-Token": csrf } };
  }
  showQueryImage(query);
  message("Searching\u2026");
  const started = performance.now();
  try {
    const answer = await api(`/api/search?${params}`, options);
    renderResults(answer.results, query.kind !== "people");
    const secs = ((performance.now() - started) / 1000).toFixed(2);
    if (query.kind === "people") {
      const of = answer.kind === "words" ? `with \u201c${answer.query}\u201d` : `of ${answer.query}`;
      message(`${answer.results.length} photos ${of} (${secs} s)`);
      return;
    }
    const what = query.kind === "text" ? `\u201c${query.text}\u201d` : query.kind === "like" ? "more like this" : "the image";
    let who = params.has("person") ? ` with ${params.getAll("person").join(", ")}` : "";
    if (params.has("words")) who += ` holding \u201c${params.get("words")}\u201d`;
    message(`${answer.results.length} results for ${what}${who} (${secs} s)`);
  } catch (err) {
    renderResults([]);
    message(err.message, true);
  }
}

// A search without a description lists photos: of the named people, or with the given words.
function listable(params) {
  return params.has("person") || params.has("words");
}

function showQueryImage(query) {
  const box = $("#query-image");
  const img = box.querySelector("img");
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  if (query.kind === "image") {
    img.src = URL.createObjectURL(query.file);
    box.querySelector("span").textContent = `Searching by ${query.file.name || "a pasted image"}`;
    box.hidden = false;
  } else if (query.kind === "like") {
    img.src = query.thumbnail || "";
    box.querySelector("span").textContent = `More like ${baseName(query.path || "")}`;
    box.hidden = !query.thumbnail;
  } else if (query.kind === "person") {
    img.src = query.face === null || query.face === undefined ? "" : faceUrl(query.face);
    box.querySelector("span").textContent = `Photos of ${personLabel(query)}`;
    box.hidden = false;
  } else {
    box.hidden = true;
  }
}

// An image another machine indexed into a shared store is shown as host:path.
function where(item) {
  return item.host ? `${item.host}:${item.path}` : item.path;
}

// A picture of a grid; its similarity shows unless it has none (a person's photos).
function tile(item, index, onOpen, extra) {
  const similar = typeof item.similarity === "number";
  const button = document.createElement("button");
  button.className = "tile";
  button.type = "button";
  button.dataset.index = String(index);
  button.title = similar ? `${where(item)}\n${item.similarity.toFixed(1)} %` : where(item);
  const img = document.createElement("img");
  img.loading = "lazy";
  img.decoding = "async";
  img.alt = baseName(item.path);
  if (item.thumbnail) img.src = item.thumbnail;
  button.append(img);
  if (similar) {
    const sim = document.createElement("span");
    sim.className = "sim";
    sim.textContent = `${item.similarity.toFixed(1)}%`;
    button.append(sim);
  }
  videoBadge(button, item);
  if (extra) extra(button);
  button.addEventListener("click", () => onOpen(index));
  return button;
}

function renderResults(results, similar = true) {
  state.items = similar ? results : results.map(({ similarity, ...rest }) => rest);
  const grid = $("#results");
  grid.replaceChildren(...state.items.map((item, i) => tile(item, i, (j) => openViewer(state.items, j))));
}

// -- keyboard navigation of a grid ---------------------------------------------------------------

function gridMove(event) {
  const current = document.activeElement;
  if (!current || !current.classList.contains("tile")) return;
  const tiles = [...current.parentElement.querySelectorAll(".tile")];
  const i = tiles.indexOf(current);
  const columns = Math.max(1, tiles.filter((t) => t.offsetTop === tiles[0].offsetTop).length);
  const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns };
  if (event.key in moves) {
    const next = tiles[i + moves[event.key]];
    if (next) next.focus();
    event.preventDefault();
  } else if (event.key === "m") {
    const items = current.closest("#groups") ? groupItems(current) : state.items;
    moreLike(items[Number(current.dataset.index)]);
    event.preventDefault();
  }
}

// -- the large view ------------------------------------------------------------------------------

let viewerItems = [];

function openViewer(items, index) {
  viewerItems = items;
  state.viewing = index;
  const item = items[index];
  if (!item) return;
  $("#big").src = item.image || "";
  $("#big").alt = baseName(item.path);
  $("#v-path").textContent = where(item);
  $("#v-full").href = (isVideo(item) ? item.video : item.image) || "#";
  $("#v-full").textContent = isVideo(item) ? "Video file" : "Full size";
  const facts = [];
  if (typeof item.similarity === "number") facts.push(["Similarity", `${item.similarity.toFixed(1)} %`]);
  if (item.taken) facts.push(["Taken", item.taken.replace("T", " ") + (item.taken_source === "mtime" ? " (file time)" : "")]);
  if (item.place) facts.push(["Place", item.place]);
  if (isVideo(item)) facts.push(["Moment", clock(moment(item))]);
  if (isVideo(item) && item.duration) facts.push(["Length", clock(item.duration)]);
  if (item.width && item.height) facts.push(["Size", `${item.width} \u00d7 ${item.height}`]);
  if (item.type) facts.push(["Type", item.type]);
  // a camera's RAW+JPEG pair is one result, the JPEG: the RAW file beside it is named here
  if (item.raw) facts.push(["RAW", baseName(item.raw)]);
  if (item.bytes) facts.push(["File", `${(item.bytes / 1048576).toFixed(item.bytes > 1048576 ? 1 : 2)} MB`]);
  $("#v-facts").replaceChildren(...facts.flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    return [dt, dd];
  }));
  $("#v-open").hidden = !state.local;
  showVideo(item);
  showViewerInfo(item);
  const dialog = $("#viewer");
  if (!dialog.open) dialog.showModal();
  $("#v-like").focus();
}

// What the database knows of the photo besides the hit: the people in it, its words.
async function showViewerInfo(item) {
  showViewerPeople(item, null);
  showViewerWords(null);
  if (item.id === null || item.id === undefined) return;
  try {
    const info = await api(`/api/image/${encodeURIComponent(state.db)}/${item.id}`);
    if (viewerItems[state.viewing] !== item) return;
    showViewerPeople(item, info);
    showViewerWords(info);
  } catch (err) {
    message(err.message, true);
  }
}

// Case and accents off, as the daemon matches words: each character of text with its folded form.
function foldChars(text) {
  return Array.from(text, (c) => c.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase());
}

// The picture's text, the words of the Words filter marked where they occur.
function showViewerWords(info) {
  const box = $("#v-words");
  box.hidden = !info || typeof info.words !== "string" || info.words === "";
  if (box.hidden) return box.replaceChildren();
  const text = info.words;
  const chars = Array.from(text);
  const folded = foldChars(text);
  const flat = folded.join("");
  const owner = folded.flatMap((f, i) => Array(f.length).fill(i));  // folded index -> character
  const marked = new Array(chars.length).fill(false);
  const wanted = (formParams("#filter-form").get("words") || "").split(/\s+/).map((w) => foldChars(w).join("")).filter(Boolean);
  for (const word of wanted) {
    for (let at = flat.indexOf(word); at >= 0; at = flat.indexOf(word, at + 1)) {
      for (let k = at; k < at + word.length; k++) marked[owner[k]] = true;
    }
  }
  const parts = [];
  for (let i = 0; i < chars.length; ) {
    let j = i;
    while (j < chars.length && marked[j] === marked[i]) j++;
    const piece = chars.slice(i, j).join("");
    if (marked[i]) {
      const mark = document.createElement("mark");
      mark.textContent = piece;
      parts.push(mark);
    } else {
      parts.push(piece);
    }
    i = j;
  }
  box.replaceChildren(...parts);
}

function closeViewer() {
  stopVideo();
  const dialog = $("#viewer");
  if (dialog.open) dialog.close();
}

function moreLike(item) {
  if (!item || item.id === null || item.id === undefined) return;
  closeViewer();
  runSearch({ kind: "like", id: item.id, path: item.path, thumbnail: item.thumbnail });
}

// -- duplicates ----------------------------------------------------------------------------------

let groupsShown = [];

function groupItems(tileEl) {
  return groupsShown[Number(tileEl.closest(".group").dataset.group)];
}

async function findDups(event) {
  if (event) event.preventDefault();
  const params = formParams("#dups-form");
  message("Looking for duplicates\u2026");
  try {
    const answer = await api(`/api/dups?${params}`);
    groupsShown = answer.groups.map((g) => g.images);
    $("#groups").replaceChildren(...answer.groups.map((group, gi) => {
      const box = document.createElement("div");
      box.className = "group";
      box.dataset.group = String(gi);
      const p = document.createElement("p");
      p.textContent = `${group.images.length} images \u00b7 keep ${baseName(group.keep)} (${group.reason})`;
      const grid = document.createElement("div");
      grid.className = "grid";
      grid.append(...group.images.map((item, i) => tile(item, i, (j) => openViewer(groupsShown[gi], j), (b) => {
        if (i === 0) {
          b.classList.add("keep");
          const badge = document.createElement("span");
          badge.className = "badge";
          badge.textContent = "keep";
          b.append(badge);
        }
      })));
      box.append(p, grid);
      return box;
    }));
    message(`${answer.total} ${answer.total === 1 ? "group" : "groups"} of near-duplicates (similarity \u2265 ${answer.min_similarity}%)`);
  } catch (err) {
    message(err.message, true);
  }
}

function showTab(name) {
  for (const tab of ["search", "dups", "people"]) {
    $(`#tab-${tab}`).setAttribute("aria-pressed", String(name === tab));
  }
  $("#results").hidden = name !== "search";
  $("#query-image").hidden = name !== "search" || !(state.last && !["text", "people"].includes(state.last.kind));
  $("#dups").hidden = name !== "dups";
  $("#people").hidden = name !== "people";
}

// -- databases and status ------------------------------------------------------------------------

async function loadDbs() {
  const select = $("#db");
  const wanted = new URLSearchParams(location.search).get("db");
  try {
    const answer = await api("/api/dbs");
    const names = answer.dbs.length ? answer.dbs : [answer.default];
    if (wanted && !names.includes(wanted)) names.push(wanted);
    select.replaceChildren(...names.map((n) => new Option(n, n)));
    state.db = wanted || (names.includes(answer.default) ? answer.default : names[0]);
    select.value = state.db;
  } catch (err) {
    message(err.message, true);
  }
}

async function loadStatus() {
  try {
    const s = await api(`/api/status?db=${encodeURIComponent(state.db)}`);
    state.local = Boolean(s.local);
    const watched = (s.watch || []).filter((f) => f.db === s.db).length;
    const parts = [
      s.images === null ? `database ${s.db} is empty` : `${s.images.toLocaleString()} images in ${s.db}`,
      `model ${s.model}`,
      `queue ${s.queue}`,
      `${watched} watched ${watched === 1 ? "folder" : "folders"}`,
    ];
    if (s.people && s.people.done < s.people.total) {
      parts.push(`people: ${s.people.done.toLocaleString()} of ${s.people.total.toLocaleString()} photos`);
    }
    if (s.words && s.words.done < s.words.total) {
      parts.push(`words: ${s.words.done.toLocaleString()} of ${s.words.total.toLocaleString()} photos`);
    }
    $("#status").textContent = parts.join(" \u00b7 ");
  } catch (err) {
    $("#status").textContent = err.message;
  }
}

// -- wiring --------------------------------------------------------------------------------------

function imageFrom(transfer) {
  if (!transfer) return null;
  for (const file of transfer.files || []) {
    if (file.type.startsWith("image/") || /\.(jpe?g|png|webp|gif|bmp|tiff?|heic|heif|avif)$/i.test(file.name)) return file;
  }
  return null;
}

function wire() {
  $("#search").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("#q").value.trim();
    if (text) runSearch({ kind: "text", text });
    else if (listable(formParams("#filter-form"))) runSearch({ kind: "people" });
  });
  $("#pick").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) runSearch({ kind: "image", file });
    event.target.value = "";
  });
  $("#db").addEventListener("change", (event) => {
    state.db = event.target.value;
    loadStatus();
    if (!$("#dups").hidden) findDups();
    else if (!$("#people").hidden || (state.last && state.last.kind === "person")) showPeople();
    else if (state.last && state.last.kind !== "like") runSearch(state.last);
  });
  const again = () => {
    if (state.last && state.last.kind !== "person") runSearch(state.last);
    else if (listable(formParams("#filter-form"))) runSearch({ kind: "people" });
  };
  $("#filter-form").addEventListener("change", again);
  $("#filter-form").addEventListener("submit", (event) => { event.preventDefault(); again(); });
  $("#tab-search").addEventListener("click", () => showTab("search"));
  $("#tab-dups").addEventListener("click", () => { showTab("dups"); if (!groupsShown.length) findDups(); });
  $("#dups-form").addEventListener("submit", findDups);
  $("#v-close").addEventListener("click", closeViewer);
  $("#v-like").addEventListener("click", () => moreLike(viewerItems[state.viewing]));
  $("#v-open").addEventListener("click", async () => {
    const item = viewerItems[state.viewing];
    try {
      await api("/api/open", { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ db: state.db, id: item.id }) });
    } catch (err) { message(err.message, true); }
  });
  wireVideo(() => viewerItems[state.viewing]);
  $("#viewer").addEventListener("keydown", (event) => {
    if (event.target.tagName === "VIDEO" && event.key.startsWith("Arrow")) return; // the player seeks
    if (event.key === "p") {
      togglePlay();
      event.preventDefault();
    } else if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      const next = state.viewing + (event.key === "ArrowRight" ? 1 : -1);
      if (next >= 0 && next < viewerItems.length) openViewer(viewerItems, next);
      event.preventDefault();
    } else if (event.key === "m") {
      moreLike(viewerItems[state.viewing]);
      event.preventDefault();
    }
  });
  $("#viewer").addEventListener("close", () => {
    stopVideo();
    const tiles = document.querySelectorAll(!$("#dups").hidden ? "#groups .tile" : "#results .tile");
    if (tiles[state.viewing] && $("#dups").hidden) tiles[state.viewing].focus();
  });
  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
    if (event.key === "/" && !typing && !$("#viewer").open) {
      $("#q").focus();
      event.preventDefault();
    } else if (!typing && !$("#viewer").open) {
      gridMove(event);
    }
  });
  let dragDepth = 0;
  document.addEventListener("dragenter", (event) => { event.preventDefault(); dragDepth += 1; $("#drop").hidden = false; });
  document.addEventListener("dragleave", () => { dragDepth = Math.max(0, dragDepth - 1); if (!dragDepth) $("#drop").hidden = true; });
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    dragDepth = 0;
    $("#drop").hidden = true;
    const file = imageFrom(event.dataTransfer);
    if (file) runSearch({ kind: "image", file });
    else message("Drop an image file (JPEG, PNG, WebP, HEIC...)", true);
  });
  document.addEventListener("paste", (event) => {
    const file = imageFrom(event.clipboardData);
    if (file) {
      event.preventDefault();
      runSearch({ kind: "image", file });
    }
  });
}

async function main() {
  wire();
  await loadDbs();
  await loadStatus();
  setInterval(() => { if (!document.hidden) loadStatus(); }, 10000);
  if (state.last) return; // a search began while the page loaded (an image dropped at once): keep its answer
  const q = new URLSearchParams(location.search).get("q");
  if (q) {
    $("#q").value = q;
    runSearch({ kind: "text", text: q });
  } else {
    message("Type what you are looking for, or drop an image anywhere on the page.");
  }
}

main();
