// Filters the tiles as the user types. No inline script: the CSP forbids it.
"use strict";
(function () {
  const input = document.getElementById("app-search");
  if (!input) return;
  // Favourites and recently used repeat tiles of the categories below: while searching they
  // step aside, so that every app is found once.
  const tiles = Array.from(document.querySelectorAll(".category:not(.personal) .tile"));
  const sections = Array.from(document.querySelectorAll(".category:not(.personal)"));
  const personal = Array.from(document.querySelectorAll(".category.personal"));
  const status = document.getElementById("search-status");

  function filter() {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const section of personal) section.hidden = words.length > 0;
    let shown = 0;
    for (const tile of tiles) {
      const text = tile.dataset.search || "";
      const match = words.every((w) => text.includes(w));
      tile.hidden = !match;
      if (match) shown += 1;
      // a launch from the results is counted as one from search (launcher/views/launch.py)
      const link = tile.querySelector("a");
      link.dataset.href = link.dataset.href || link.getAttribute("href");
      link.setAttribute("href", link.dataset.href + (words.length ? "?source=search" : ""));
    }
    for (const section of sections) {
      section.hidden = !section.querySelector(".tile:not([hidden])");
    }
    status.textContent = shown === 0 ? status.dataset.empty : "";
  }

  input.addEventListener("input", filter);
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter") {
      filter(); // the list may not have caught up with fast typing yet
      const first = tiles.find((t) => !t.hidden);
      if (first) first.querySelector("a").click();
    } else if (event.key === "Escape" && input.value) {
      event.preventDefault(); // Escape in a search field clears it here; don't let it do more
      input.value = "";
      filter();
    }
  });
  // Someone may have typed before this script ran (it is deferred): catch up.
  if (input.value) filter();
})();
