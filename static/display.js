// The hallway screen moves on by itself: to the next screenful of announcements after
// data-refresh seconds (the server says which in data-next). A script file, not a meta
// refresh: a timed meta refresh is an accessibility failure (WCAG 2.2.1) for the people who
// read along, and the CSP forbids inline script. Without script, <noscript> does the same.
"use strict";
(function () {
  const body = document.body;
  const seconds = Number(body.dataset.refresh);
  const next = body.dataset.next;
  if (!seconds || !next || !next.startsWith("/display/")) return;
  setTimeout(function () {
    location.replace(next);
  }, seconds * 1000);
})();
