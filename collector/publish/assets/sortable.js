/* Quant Atlas: sortable and filterable tables, our own few lines (no CDN, works offline).
   Click a header (or focus it and press Enter or Space) to sort; again to reverse. Numeric columns sort by
   the cell's data-sort value, unknown values (empty data-sort) always last; text columns in natural order (Q2_K
   before Q10_0, IQ4_XS after IQ3_M), case and accents aside. Headers keep their column-header
   role for screen readers and carry aria-sort. Re-initialised on material's instant navigation. */
(function () {
  "use strict";

  var text = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

  function key(row, idx, numeric) {
    var cell = row.cells[idx];
    if (!cell) return numeric ? null : "";
    if (numeric) {
      var raw = cell.getAttribute("data-sort");
      if (raw === null || raw === "") return null;
      var v = parseFloat(raw);
      return isNaN(v) ? null : v;
    }
    return (cell.textContent || "").trim();
  }

  function sortBy(table, idx, numeric, asc) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
      return { row: row, k: key(row, idx, numeric), i: i };
    });
    rows.sort(function (a, b) {
      if (a.k === null && b.k === null) return a.i - b.i;
      if (a.k === null) return 1;
      if (b.k === null) return -1;
      var c = numeric ? (a.k < b.k ? -1 : a.k > b.k ? 1 : 0) : text.compare(a.k, b.k);
      return (asc ? c : -c) || a.i - b.i;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
  }

  function setup(table) {
    if (table.getAttribute("data-qa-ready") || !table.tHead || !table.tBodies.length) return;
    table.setAttribute("data-qa-ready", "1");
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, idx) {
      th.tabIndex = 0;
      th.title = "Sort by this column";
      var go = function (e) {
        if (e && e.target && e.target.closest && e.target.closest("a")) return;  // a glossary link in the header
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        sortBy(table, idx, th.getAttribute("data-type") === "num", asc);
      };
      th.addEventListener("click", go);
      th.addEventListener("keydown", function (e) {
        if (e.target === th && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); go(); }
      });
    });
  }

  /* A filter above a table (p.qa-filter data-table=ID, hidden without this script): each select keeps the rows
     whose data-<name> attribute (space-separated values) holds the chosen value; "" keeps every row. */
  function filter(form) {
    var table = document.getElementById(form.getAttribute("data-table"));
    if (!table || form.getAttribute("data-qa-ready")) return;
    form.setAttribute("data-qa-ready", "1");
    form.hidden = false;
    var selects = form.querySelectorAll("select"), count = form.querySelector(".qa-filter-count");
    var apply = function () {
      var shown = 0, rows = table.tBodies[0].rows;
      Array.prototype.forEach.call(rows, function (row) {
        var keep = Array.prototype.every.call(selects, function (s) {
          return !s.value || (row.getAttribute("data-" + s.name) || "").split(" ").indexOf(s.value) >= 0;
        });
        row.hidden = !keep;
        if (keep) shown += 1;
      });
      if (count) count.textContent = shown + " of " + rows.length + " devices";
    };
    Array.prototype.forEach.call(selects, function (s) { s.addEventListener("change", apply); });
    apply();
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table.qa-sortable"), setup);
    Array.prototype.forEach.call(document.querySelectorAll("p.qa-filter[data-table]"), filter);
  }

  if (typeof window.document$ !== "undefined" && window.document$.subscribe) {
    window.document$.subscribe(init);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
