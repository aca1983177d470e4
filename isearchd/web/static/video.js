// ImgSearch web page: video results. A video hit ("type": "video") is a moment of a video: its
// tile shows that moment's frame with a play badge and the time; the large view plays the file
// (/video/DB/ID, served with range requests) from that moment, or, where this browser cannot play
// it, shows the frame and "Open" (the daemon opens it in this machine's player). Loaded before
// app.js, whose $, state, csrf, api and message these functions use when called.
"use strict";

function isVideo(item) {
  return Boolean(item) && item.type === "video" && Boolean(item.video);
}

// A moment as a player shows it: 1:23, or 1:02:03 past an hour (as `isearch search` prints it).
function clock(seconds) {
  const whole = Math.max(0, Math.floor(Number(seconds) || 0));
  const h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), s = whole % 60;
  const ss = String(s).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

function moment(item) {
  return typeof item.at === "number" ? item.at : 0;
}

// The play badge and the moment on a video's tile.
function videoBadge(button, item) {
  if (!isVideo(item)) return;
  button.classList.add("video");
  const badge = document.createElement("span");
  badge.className = "play";
  badge.textContent = `\u25b6 ${clock(moment(item))}`;
  badge.setAttribute("aria-label", `video at ${clock(moment(item))}`);
  button.append(badge);
  const [where, ...rest] = button.title.split("\n");
  button.title = [`${where} @ ${clock(moment(item))}`, ...rest].join("\n");
}

// The large view of a video: the player from the hit's moment (the #t= fragment, and currentTime
// once the metadata is in, for browsers that ignore the fragment), the frame as its poster.
function showVideo(item) {
  const player = $("#v-video");
  stopVideo();
  $("#v-cannot").hidden = true;
  $("#v-open-video").hidden = true;
  if (!isVideo(item)) {
    player.hidden = true;
    $("#big").hidden = false;
    return;
  }
  const at = moment(item);
  $("#big").hidden = true;
  player.hidden = false;
  player.poster = item.image || "";
  player.dataset.at = String(at);
  player.src = `${item.video}#t=${at}`; // (setting it starts loading)
}

function startAtMoment() {
  const player = $("#v-video");
  const at = Number(player.dataset.at || 0);
  if (Math.abs(player.currentTime - at) > 0.5) player.currentTime = at;
  player.play().catch(() => {}); // a browser that does not let it start alone: the controls do
}

// The browser cannot play it (its codec or container, or the file changed): the frame instead.
function cannotPlay() {
  const player = $("#v-video");
  if (player.hidden || !player.getAttribute("src")) return;
  stopVideo();
  player.hidden = true;
  $("#big").hidden = false;
  $("#v-cannot").hidden = false;
  $("#v-open-video").hidden = !state.local;
}

function stopVideo() {
  const player = $("#v-video");
  player.pause();
  if (player.getAttribute("src")) {
    player.removeAttribute("src");
    player.load(); // drops the connection and the buffered data
  }
}

function togglePlay() {
  const player = $("#v-video");
  if (player.hidden) return;
  if (player.paused) player.play().catch(() => {});
  else player.pause();
}

// "Open": the video itself, in this machine's player, at its moment where the player takes one.
async function openVideo(item) {
  try {
    await api("/api/open", { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ db: state.db, id: item.id, file: true }) });
  } catch (err) { message(err.message, true); }
}

function wireVideo(current) {
  const player = $("#v-video");
  player.addEventListener("loadedmetadata", startAtMoment);
  player.addEventListener("error", cannotPlay);
  $("#v-open-video").addEventListener("click", () => openVideo(current()));
}
