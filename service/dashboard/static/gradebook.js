// Keyboard navigation of the gradebook (the ARIA grid pattern's roving tabindex): the table's
// body is one tab stop, and the arrow keys move focus between its cells. Each cell's focus target
// is its link (a student's history, a submission) or the cell itself when it has none. Without
// this script every link is an ordinary tab stop, so the page works without it.
(function () {
  "use strict";
  const table = document.getElementById("gradebook");
  if (!table || !table.tBodies.length) return;
  const body = table.tBodies[0];
  const grid = Array.from(body.rows).map(function (row) {
    return Array.from(row.cells).map(function (cell) {
      return cell.querySelector("a, button") || cell;
    });
  });
  if (!grid.length || !grid[0].length) return;
  grid.forEach(function (row) {
    row.forEach(function (target) { target.tabIndex = -1; });
  });
  let current = grid[0][0];
  current.tabIndex = 0;

  function position(element) {
    for (let r = 0; r < grid.length; r++) {
      const c = grid[r].indexOf(element);
      if (c !== -1) return [r, c];
    }
    return null;
  }

  function moveTo(r, c) {
    const row = grid[Math.max(0, Math.min(grid.length - 1, r))];
    const target = row[Math.max(0, Math.min(row.length - 1, c))];
    current.tabIndex = -1;
    target.tabIndex = 0;
    current = target;
    target.focus();
  }

  // A click or a Tab into a cell makes it the body's tab stop.
  body.addEventListener("focusin", function (event) {
    if (position(event.target) === null) return;
    current.tabIndex = -1;
    current = event.target;
    current.tabIndex = 0;
  });

  body.addEventListener("keydown", function (event) {
    const at = position(event.target);
    if (at === null || event.altKey || event.metaKey) return;
    const r = at[0];
    const c = at[1];
    const page = 10;
    switch (event.key) {
      case "ArrowUp": moveTo(r - 1, c); break;
      case "ArrowDown": moveTo(r + 1, c); break;
      case "ArrowLeft": moveTo(r, c - 1); break;
      case "ArrowRight": moveTo(r, c + 1); break;
      case "PageUp": moveTo(r - page, c); break;
      case "PageDown": moveTo(r + page, c); break;
      case "Home": event.ctrlKey ? moveTo(0, 0) : moveTo(r, 0); break;
      case "End": event.ctrlKey ? moveTo(grid.length - 1, Infinity) : moveTo(r, Infinity); break;
      default: return;
    }
    event.preventDefault();
  });
})();
