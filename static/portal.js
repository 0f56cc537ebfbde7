// The grid's keyboard and search. No inline script: the CSP forbids it.
"use strict";

// The matching rules of launcher/search.py, line for line (its docstring explains them);
// tests/test_search.py's table runs through both.
const launcherSearch = (function () {
  const TYPO_MIN = 4;
  function normalise(text) {
    return text.normalize("NFKD").replace(/\p{M}/gu, "").toLowerCase()
      .replace(/[^\p{L}\p{N}]+/gu, " ").trim();
  }
  function haystack(parts) {
    return normalise(parts.filter(Boolean).join(" "));
  }
  function prefixDistance(word, text) {
    const m = word.length, n = text.length;
    const rows = [Array.from({ length: n + 1 }, (_, j) => j)];
    for (let i = 1; i <= m; i++) {
      const row = [i];
      for (let j = 1; j <= n; j++) {
        const cost = word[i - 1] === text[j - 1] ? 0 : 1;
        let best = Math.min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + cost);
        if (i > 1 && j > 1 && word[i - 1] === text[j - 2] && word[i - 2] === text[j - 1]) {
          best = Math.min(best, rows[i - 2][j - 2] + 1);
        }
        row.push(best);
      }
      rows.push(row);
    }
    return Math.min(...rows[m]);
  }
  function wordMatches(word, text, compact, words) {
    if (text.includes(word) || compact.includes(word)) return true;
    if ([...word].length < TYPO_MIN) return false;
    return words.some((w) => [...w].length >= TYPO_MIN - 1 && prefixDistance(word, w) <= 1);
  }
  function matches(query, text) {
    const wanted = normalise(query).split(" ").filter(Boolean);
    if (!wanted.length) return true;
    const compact = text.replaceAll(" ", "");
    const words = text.split(" ").filter(Boolean);
    return wanted.every((w) => wordMatches(w, text, compact, words));
  }
  return { normalise, haystack, prefixDistance, matches };
})();
window.launcherSearch = launcherSearch;

(function () {
  const input = document.getElementById("app-search");
  if (!input) return;
  // Favourites and recently used repeat tiles of the categories below: while searching they
  // step aside, so that every app is found once.
  const tiles = Array.from(document.querySelectorAll(".category:not(.personal) .tile"));
  const sections = Array.from(document.querySelectorAll(".category:not(.personal)"));
  const personal = Array.from(document.querySelectorAll(".category.personal"));
  const status = document.getElementById("search-status");
  const form = input.form;

  function filter() {
    const query = input.value;
    const searching = launcherSearch.normalise(query) !== "";
    for (const section of personal) section.hidden = searching;
    let shown = 0;
    for (const tile of tiles) {
      const match = launcherSearch.matches(query, tile.dataset.search || "");
      tile.hidden = !match;
      if (match) shown += 1;
      // a launch from the results is counted as one from search (launcher/views/launch.py)
      const link = tile.querySelector("a");
      link.dataset.href = link.dataset.href || link.getAttribute("href").split("?")[0];
      link.setAttribute("href", link.dataset.href + (searching ? "?source=search" : ""));
    }
    for (const section of sections) {
      section.hidden = !section.querySelector(".tile:not([hidden])");
    }
    status.textContent = shown === 0 ? status.dataset.empty : "";
  }

  function results() {
    return Array.from(document.querySelectorAll(".category:not([hidden]) .tile:not([hidden]) > a"));
  }

  function clear() {
    input.value = "";
    filter();
    input.focus();
  }

  // The link below or above this one: the nearest in the next row, by position on screen.
  function vertical(links, from, down) {
    const r = from.getBoundingClientRect(), x = r.left + r.width / 2;
    let best = null, bestScore = Infinity;
    for (const link of links) {
      const s = link.getBoundingClientRect();
      const ahead = down ? s.top >= r.bottom - 1 : s.bottom <= r.top + 1;
      if (!ahead) continue;
      const score = Math.abs(down ? s.top - r.bottom : r.top - s.bottom) * 4
        + Math.abs(s.left + s.width / 2 - x);
      if (score < bestScore) { best = link; bestScore = score; }
    }
    return best;
  }

  function typing(event) {
    const el = event.target;
    return el instanceof HTMLElement && (el.isContentEditable
      || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
  }

  input.addEventListener("input", filter);
  form.addEventListener("submit", function (event) {
    // with the script the list filters as you type; Enter opens a result instead (below)
    event.preventDefault();
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter") {
      event.preventDefault();
      filter(); // the list may not have caught up with fast typing yet
      const first = results()[0];
      if (first && input.value.trim()) first.click();
    } else if (event.key === "ArrowDown") {
      const first = results()[0];
      if (first) { event.preventDefault(); first.focus(); }
    } else if (event.key === "Escape" && input.value) {
      event.preventDefault(); // Escape in a search field clears it here; don't let it do more
      clear();
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const active = document.activeElement;
    const onResult = active instanceof HTMLAnchorElement && active.closest(".tile");
    if (onResult && event.key.startsWith("Arrow")) {
      const links = results();
      const i = links.indexOf(active);
      let next = null;
      if (event.key === "ArrowRight") next = links[i + 1];
      else if (event.key === "ArrowLeft") next = i > 0 ? links[i - 1] : input;
      else next = vertical(links, active, event.key === "ArrowDown")
        || (event.key === "ArrowUp" ? input : null);
      if (next) { event.preventDefault(); next.focus(); }
      return;
    }
    if (event.key === "Escape" && input.value) { event.preventDefault(); clear(); return; }
    if (typing(event)) return;
    if (event.key === "/") { event.preventDefault(); input.focus(); input.select(); return; }
    if (/^[1-9]$/.test(event.key)) {
      const favourite = document.querySelectorAll(".favourites .tile > a")[Number(event.key) - 1];
      if (favourite) { event.preventDefault(); favourite.click(); }
      return;
    }
    // a letter typed anywhere on the grid starts a search with it
    if (event.key.length === 1 && /[\p{L}\p{N}]/u.test(event.key)) {
      event.preventDefault();
      input.focus();
      input.value += event.key;
      filter();
    }
  });

  // Someone may have typed before this script ran (it is deferred): catch up.
  if (input.value) filter();

  // Back from moving a favourite with its buttons: the keyboard stays on the moved tile.
  const moved = location.hash.startsWith("#fav-") && document.getElementById(location.hash.slice(1));
  const button = moved && moved.querySelector(".moves button");
  if (button) {
    // after the browser's own scroll to the fragment, which would take the focus away again
    window.addEventListener("load", function () {
      requestAnimationFrame(() => setTimeout(() => button.focus({ preventScroll: true }), 0));
    });
  }

  // Drag and drop of favourites where there is a fine pointer (a mouse); the buttons do the
  // same from the keyboard or a touch screen. Each drop is one form post, as the buttons are.
  const list = document.querySelector(".favourites .tiles");
  if (!list || !window.matchMedia("(pointer: fine)").matches) return;
  let dragged = null;
  for (const tile of list.querySelectorAll(".tile")) {
    tile.draggable = true;
    tile.addEventListener("dragstart", function (event) {
      dragged = tile;
      tile.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", tile.dataset.app);
    });
    tile.addEventListener("dragend", function () {
      tile.classList.remove("dragging");
      dragged = null;
    });
    tile.addEventListener("dragover", function (event) {
      if (!dragged || dragged === tile) return;
      event.preventDefault();
      const r = tile.getBoundingClientRect();
      const after = event.clientX > r.left + r.width / 2;
      list.insertBefore(dragged, after ? tile.nextSibling : tile);
    });
    tile.addEventListener("drop", function (event) {
      event.preventDefault();
    });
  }
  list.addEventListener("drop", async function (event) {
    event.preventDefault();
    const tile = list.querySelector(".tile.dragging") || dragged;
    if (!tile) return;
    const to = Array.from(list.children).indexOf(tile);
    const token = document.querySelector("#tile-actions input[name=csrf_token]").value;
    const body = new URLSearchParams({ csrf_token: token, to: String(to) });
    const response = await fetch("/favourites/" + tile.dataset.app + "/move", {
      method: "POST", body, redirect: "manual", credentials: "same-origin",
    });
    // the server's order, with the buttons that go with it (on failure: as it was)
    if (response.type === "opaqueredirect") history.replaceState(null, "", "/#fav-" + tile.dataset.app);
    location.reload();
  });
})();
