// Sortable tables: click a column header to sort by it (again to reverse).
// Cells may carry data-sort (a number) so "28.77" and "-" sort as numbers; without
// JavaScript the tables are simply unsorted, which is fine.
(function () {
  "use strict";
  function key(cell) {
    var raw = cell.getAttribute("data-sort");
    var text = raw !== null ? raw : cell.textContent.trim();
    var num = parseFloat(text);
    return isNaN(num) || !/^-?[\d.]+(e[-+]?\d+)?$/i.test(text) ? { n: null, t: text.toLowerCase() } : { n: num, t: text };
  }
  function compare(a, b) {
    if (a.n !== null && b.n !== null) return a.n - b.n;
    if (a.n !== null) return -1;          // numbers before blanks and text
    if (b.n !== null) return 1;
    return a.t < b.t ? -1 : a.t > b.t ? 1 : 0;
  }
  function sortBy(table, index, header) {
    var body = table.tBodies[0];
    var descending = header.getAttribute("aria-sort") === "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var c = compare(key(r1.cells[index]), key(r2.cells[index]));
      return descending ? -c : c;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
      if (!table.tHead || !table.tBodies.length) return;
      var headers = table.tHead.rows[table.tHead.rows.length - 1].cells;
      Array.prototype.forEach.call(headers, function (th, index) {
        th.title = "sort by this column";
        th.addEventListener("click", function () { sortBy(table, index, th); });
      });
      table.setAttribute("data-sortable-ready", "1");
    });
  });
})();
