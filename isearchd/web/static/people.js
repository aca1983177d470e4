// The People view: a face per person, the name edited in place, merging by selection (and undoing
// it), hiding a person (and showing the hidden again), a person's photos in the results grid; and in
// the large view, the named people in the photo and, for a person's photo, "Not <name>". Loaded
// after app.js, whose helpers ($, api, state...) it uses.
"use strict";

const people = { selected: new Set() };

function faceUrl(face) {
  return `/face/${encodeURIComponent(state.db)}/${face}`;
}

function personLabel(person) {
  return person.name || `Person ${person.id}`;
}

function post(url, body) {
  return api(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({ db: state.db, ...body }),
  });
}

// -- the list of people --------------------------------------------------------------------------

async function showPeople() {
  showTab("people");
  message("Loading people\u2026");
  try {
    const all = $("#show-hidden").checked ? "&all=1" : "";
    const answer = await api(`/api/people?db=${encodeURIComponent(state.db)}${all}`);
    people.selected.clear();
    $("#people-grid").replaceChildren(...answer.people.map(personCard));
    updateMerge();
    if (!answer.enabled) {
      message(`People are off for ${answer.db}: \`isearch people --enable -d ${answer.db}\` turns them on`);
    } else {
      const reading = answer.analysed < answer.total ? ` (faces read in ${answer.analysed} of ${answer.total} photos)` : "";
      message(`${answer.people.length} ${answer.people.length === 1 ? "person" : "people"}${reading}`);
    }
  } catch (err) {
    $("#people-grid").replaceChildren();
    message(err.message, true);
  }
}

function personCard(person) {
  const card = document.createElement("div");
  card.className = "person";
  card.dataset.id = String(person.id);
  const open = document.createElement("button");
  open.type = "button";
  open.className = "face";
  open.title = `${personLabel(person)}: their photos`;
  const img = document.createElement("img");
  img.alt = personLabel(person);
  img.decoding = "async";
  if (person.face !== null && person.face !== undefined) img.src = faceUrl(person.face);
  open.append(img);
  open.addEventListener("click", () => showPerson(person));
  const pick = document.createElement("input");
  pick.type = "checkbox";
  pick.className = "pick";
  pick.title = "Select, to merge";
  pick.setAttribute("aria-label", `Select ${personLabel(person)}`);
  pick.addEventListener("change", () => {
    if (pick.checked) people.selected.add(person.id);
    else people.selected.delete(person.id);
    card.classList.toggle("selected", pick.checked);
    updateMerge();
  });
  const name = document.createElement("input");
  name.className = "name";
  name.value = person.name || "";
  name.placeholder = "Add a name";
  name.setAttribute("aria-label", `Name of person ${person.id}`);
  name.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      saveName(person, name);
    } else if (event.key === "Escape") {
      event.preventDefault();
      name.value = person.name || "";
      name.blur();
    }
  });
  const count = document.createElement("span");
  count.className = "count";
  count.textContent = `${person.photos} ${person.photos === 1 ? "photo" : "photos"}`;
  const hide = document.createElement("button");
  hide.type = "button";
  hide.className = "hide";
  hide.textContent = person.hidden ? "Unhide" : "Hide";
  hide.title = person.hidden ? "Show this person in the list again" : "Leave this person out of the list";
  hide.addEventListener("click", () => setHidden(person, !person.hidden));
  card.classList.toggle("hidden-person", Boolean(person.hidden));
  card.append(open, pick, name, count, hide);
  return card;
}

async function setHidden(person, hidden) {
  try {
    await post(`/api/people/${person.id}/hide`, { hidden });
    await showPeople();
    message(hidden ? `${personLabel(person)} is hidden ("Hidden people too" shows them)` : `${personLabel(person)} is shown again`);
  } catch (err) {
    message(err.message, true);
  }
}

// Enter in a name field: the typed name, or none when it is empty.
async function saveName(person, input) {
  const name = input.value.trim();
  try {
    await post(`/api/people/${person.id}/name`, { name: name || null });
    person.name = name || null;
    input.value = name;
    input.blur();
    message(name ? `Person ${person.id} is ${name}` : `Person ${person.id} has no name now`);
  } catch (err) {
    message(err.message, true);
  }
}

function updateMerge() {
  const n = people.selected.size;
  $("#merge").disabled = n < 2;
  $("#merge").textContent = n < 2 ? "Merge" : `Merge ${n} people`;
}

async function mergeSelected() {
  const ids = [...people.selected];
  try {
    const answer = await post("/api/people/merge", { people: ids });
    await showPeople();
    people.merged = answer.person;
    $("#undo-merge").hidden = false;
    message(`Merged ${ids.length} people into person ${answer.person}`);
  } catch (err) {
    message(err.message, true);
  }
}

// Undo the merge just made: the people merged come back as they were (names, faces, corrections).
async function undoMerge() {
  const person = people.merged;
  if (person === undefined) return;
  try {
    await post(`/api/people/${person}/split`, {});
    people.merged = undefined;
    $("#undo-merge").hidden = true;
    await showPeople();
    message(`The merge into person ${person} is undone`);
  } catch (err) {
    message(err.message, true);
  }
}

// -- one person's photos -------------------------------------------------------------------------

async function showPerson(person) {
  const query = { kind: "person", id: person.id, name: person.name, face: person.face };
  state.last = query;
  showTab("search");
  showQueryImage(query);
  message(`Loading the photos of ${personLabel(person)}\u2026`);
  try {
    const answer = await api(`/api/people/${person.id}?db=${encodeURIComponent(state.db)}`);
    query.name = answer.name;
    renderResults(answer.photos, false);
    showQueryImage(query);
    message(`${answer.photos.length} ${answer.photos.length === 1 ? "photo" : "photos"} of ${personLabel(answer)}, newest first`);
  } catch (err) {
    renderResults([]);
    message(err.message, true);
  }
}

// -- the large view ------------------------------------------------------------------------------

// The named people in the photo (each a link to their photos) and, for a photo of the person whose
// photos the grid shows, the button that takes their face out of it (``info``: what
// /api/image answered of the photo; null while it is asked).
function showViewerPeople(item, info) {
  const box = $("#v-people");
  box.replaceChildren();
  box.hidden = true;
  const shown = state.last && state.last.kind === "person" && viewerItems === state.items ? state.last : null;
  $("#v-not").hidden = !shown;
  if (shown) $("#v-not").textContent = `Not ${personLabel(shown)}`;
  if (!info || !info.people || !info.people.length) return;
  const names = info.people.map((name) => {
    const link = document.createElement("button");
    link.type = "button";
    link.textContent = name;
    link.title = `Photos of ${name}`;
    link.addEventListener("click", () => {
      closeViewer();
      $("#filter-form input[name=person]").value = name;
      runSearch({ kind: "people" });
    });
    return link;
  });
  box.replaceChildren("In it:", ...names);
  box.hidden = false;
}

async function notThisPerson() {
  const person = state.last;
  const item = viewerItems[state.viewing];
  if (!person || person.kind !== "person" || !item) return;
  try {
    await post(`/api/people/${person.id}/remove`, { path: item.path });
    closeViewer();
    renderResults(state.items.filter((other) => other !== item), false);
    message(`${personLabel(person)} is not in ${baseName(item.path)} any more`);
  } catch (err) {
    message(err.message, true);
  }
}

$("#tab-people").addEventListener("click", showPeople);
$("#merge").addEventListener("click", mergeSelected);
$("#undo-merge").addEventListener("click", undoMerge);
$("#show-hidden").addEventListener("change", showPeople);
$("#v-not").addEventListener("click", notThisPerson);
