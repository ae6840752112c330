// The /ops page: re-reads /v1/federation/health every 5 s and redraws the table;
// re-reads /v1/federation/history every 30 s and redraws the charts. Plain browser
// JavaScript, no build step, no third-party code.
"use strict";

(function () {
  const HEALTH_URL = "/v1/federation/health";
  const HISTORY_HOURS = 6;
  const HISTORY_URL = "/v1/federation/history?hours=" + HISTORY_HOURS;
  const REFRESH_MS = 5000;
  const HISTORY_EVERY = 6; // history is read on every 6th refresh (30 s)
  const RANK = { GOOD: 0, WARN: 1, BAD: 2 };
  // ten distinct colours, each at least 3:1 against white (WCAG 1.4.11, graphics)
  const COLOURS = ["#1d70b8", "#d4351c", "#00703c", "#4c2c92", "#b35900", "#912b88",
                   "#00728f", "#6f4e00", "#505a5f", "#c2185b"];
  const SVG = "http://www.w3.org/2000/svg";

  let councils = [];
  let sortKey = "status";
  let descending = true; // worst first
  let lastGood = null;
  let tick = 0;

  // --- formatting ---------------------------------------------------------------

  function dash(value) {
    return value === null || value === undefined ? "—" : String(value);
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return "never";
    if (seconds < 90) return Math.round(seconds) + " s ago";
    if (seconds < 90 * 60) return Math.round(seconds / 60) + " min ago";
    if (seconds < 48 * 3600) return Math.round(seconds / 3600) + " h ago";
    return Math.round(seconds / 86400) + " d ago";
  }

  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                  "Nov", "Dec"];
  const pad = function (n) { return String(n).padStart(2, "0"); };

  // "5 Dec 2026, 14:05:09 UTC": the server's first render says it the same way
  function when(iso) {
    const d = new Date(iso);
    return d.getUTCDate() + " " + MONTHS[d.getUTCMonth()] + " " + d.getUTCFullYear() + ", " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
  }

  function sinceIso(iso, now) {
    if (!iso) return "never";
    return age(Math.max(0, (now - Date.parse(iso)) / 1000));
  }

  function expiry(days) {
    if (days === null || days === undefined) return "never";
    if (days < 0) return "expired";
    return days < 1 ? "< 1 d" : Math.floor(days) + " d";
  }

  // --- sorting -------------------------------------------------------------------

  function sortValue(council, key) {
    switch (key) {
      case "status": return RANK[council.status];
      case "reasons": return (council.reasons || []).join("; ");
      case "last_batch_at": return council.last_batch_at ? Date.parse(council.last_batch_at) : null;
      case "seconds_since_heartbeat":
        // never heard from sorts as the oldest heartbeat
        return council.seconds_since_heartbeat === null ? Infinity : council.seconds_since_heartbeat;
      default: return council[key];
    }
  }

  function compare(a, b) {
    const x = sortValue(a, sortKey);
    const y = sortValue(b, sortKey);
    // blanks last whichever the direction
    if (x === null || x === undefined) return (y === null || y === undefined) ? 0 : 1;
    if (y === null || y === undefined) return -1;
    let order = typeof x === "string" ? x.localeCompare(y) : (x < y ? -1 : x > y ? 1 : 0);
    if (descending) order = -order;
    return order || a.code.localeCompare(b.code);
  }

  // --- the table -----------------------------------------------------------------

  const LABELS = { code: "Code", name: "Council", status: "Status", reasons: "Reasons",
                   "num lag": "Lag", "num outbox": "Outbox", "num notices": "Notices waiting",
                   "num heartbeat": "Heartbeat",
                   "num last-batch": "Last batch", "num records": "Records",
                   "num key-expiry": "Key expiry" };

  // Notices the council's node has not fetched yet, as ops.py's notices_waiting says it.
  function noticesWaiting(undelivered, waitSeconds) {
    if (!undelivered) return "0";
    return undelivered + " (oldest " + age(waitSeconds) + ")";
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.dataset.label = LABELS[className] || "";
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }

  function badge(status) {
    const span = document.createElement("span");
    span.className = "badge " + String(status).toLowerCase();
    span.textContent = status;
    return span;
  }

  function renderTable() {
    const now = Date.now();
    const body = document.querySelector("#councils tbody");
    const rows = councils.slice().sort(compare).map(function (c) {
      const tr = document.createElement("tr");
      tr.className = "status-" + String(c.status).toLowerCase();
      tr.dataset.council = c.code;
      cell(tr, c.code, "code");
      cell(tr, c.name, "name");
      cell(tr, "", "status").appendChild(badge(c.status));
      const reasons = cell(tr, "", "reasons");
      if (c.reasons && c.reasons.length) {
        const ul = document.createElement("ul");
        c.reasons.forEach(function (reason) {
          const li = document.createElement("li");
          li.textContent = reason;
          ul.appendChild(li);
        });
        reasons.appendChild(ul);
      }
      cell(tr, dash(c.lag), "num lag");
      cell(tr, dash(c.outbox_depth), "num outbox");
      cell(tr, noticesWaiting(c.notices_undelivered, c.notices_wait_seconds), "num notices");
      cell(tr, age(c.seconds_since_heartbeat), "num heartbeat");
      const last = cell(tr, sinceIso(c.last_batch_at, now), "num last-batch");
      if (c.last_batch_at) last.title = when(c.last_batch_at);
      cell(tr, dash(c.records), "num records");
      cell(tr, expiry(c.key_expiry_days), "num key-expiry");
      return tr;
    });
    body.replaceChildren.apply(body, rows);
    document.querySelectorAll("#councils th").forEach(function (th) {
      if (th.dataset.key === sortKey) {
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      } else {
        th.removeAttribute("aria-sort");
      }
    });
  }

  function renderOverall(health) {
    const overall = document.getElementById("overall");
    overall.className = "badge " + String(health.status).toLowerCase();
    overall.textContent = health.status;
    const counts = { GOOD: 0, WARN: 0, BAD: 0 };
    health.councils.forEach(function (c) { counts[c.status] = (counts[c.status] || 0) + 1; });
    document.getElementById("summary").textContent =
      health.councils.length + " councils: " + counts.GOOD + " good, " + counts.WARN +
      " warn, " + counts.BAD + " bad";
    const at = document.getElementById("generated-at");
    at.dateTime = health.generated_at;
    at.textContent = when(health.generated_at);
  }

  // --- the charts ----------------------------------------------------------------
  // One small chart per council (small multiples): lines never sit on one another,
  // however many councils report the same figures. Each council keeps its colour
  // (by its place among all councils, sorted by code) and is named, not coded.

  function svgEl(name, attrs, text) {
    const el = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function drawPanel(code, points, field, label, colour, endMs) {
    const W = 300, H = 110, L = 40, R = 8, T = 8, B = 20;
    const startMs = endMs - HISTORY_HOURS * 3600 * 1000;
    let max = 1; // an all-zero series still gets a scale
    points.forEach(function (p) {
      if (p[field] !== null && p[field] !== undefined) max = Math.max(max, p[field]);
    });
    const svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, role: "img",
                               "aria-label": label + ", " + nameOf(code) + ", last " +
                                 HISTORY_HOURS + " hours, highest " + max });
    const x = function (ms) { return L + (W - L - R) * (ms - startMs) / (endMs - startMs); };
    const y = function (v) { return H - B - (H - T - B) * (max ? v / max : 0); };
    svg.appendChild(svgEl("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
    svg.appendChild(svgEl("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
    svg.appendChild(svgEl("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, String(max)));
    svg.appendChild(svgEl("text", { x: L - 4, y: H - B, "text-anchor": "end" }, "0"));
    [HISTORY_HOURS, HISTORY_HOURS / 2, 0].forEach(function (h) {
      svg.appendChild(svgEl("text", { x: x(endMs - h * 3600 * 1000), y: H - 5,
                                      "text-anchor": h === HISTORY_HOURS ? "start" : h ? "middle" : "end" },
                            h ? "-" + h + " h" : "now"));
    });
    const drawn = points
      .filter(function (p) { return p[field] !== null && p[field] !== undefined; })
      .map(function (p) { return x(Date.parse(p.t)).toFixed(1) + "," + y(p[field]).toFixed(1); });
    if (drawn.length) {
      const line = svgEl("polyline", { points: drawn.join(" "), stroke: colour });
      line.appendChild(svgEl("title", {}, nameOf(code)));
      svg.appendChild(line);
    }
    const figure = document.createElement("figure");
    figure.className = "panel";
    figure.dataset.council = code;
    const caption = document.createElement("figcaption");
    caption.style.setProperty("--swatch", colour);
    caption.textContent = nameOf(code);
    figure.appendChild(caption);
    figure.appendChild(svg);
    return figure;
  }

  function nameOf(code) {
    const found = councils.find(function (c) { return c.code === code; });
    return found && found.name ? found.name : code;
  }

  function colourOf(code) {
    const codes = councils.map(function (c) { return c.code; }).sort();
    const i = codes.indexOf(code);
    return COLOURS[(i < 0 ? codes.length : i) % COLOURS.length];
  }

  function renderHistory(history) {
    // {council: [{t, lag, hub_seq, records_applied}]}, possibly wrapped in {councils: …}
    const series = history && history.councils && !Array.isArray(history.councils)
      ? history.councils : history;
    const codes = Object.keys(series || {}).sort(function (a, b) {
      return nameOf(a).localeCompare(nameOf(b)) || a.localeCompare(b);
    });
    const charts = { "lag-chart": ["lag", "Lag"], "applied-chart": ["records_applied", "Records applied"] };
    if (!codes.some(function (c) { return series[c].length; })) {
      Object.keys(charts).forEach(function (id) {
        const p = document.createElement("p");
        p.className = "empty";
        p.textContent = "Nothing in the last " + HISTORY_HOURS + " hours.";
        document.getElementById(id).replaceChildren(p);
      });
      return;
    }
    const end = Date.now();
    Object.keys(charts).forEach(function (id) {
      const field = charts[id][0], label = charts[id][1];
      document.getElementById(id).replaceChildren.apply(
        document.getElementById(id), codes.map(function (code) {
          return drawPanel(code, series[code], field, label, colourOf(code), end);
        }));
    });
  }

  // --- refreshing ----------------------------------------------------------------

  async function getJson(url) {
    const response = await fetch(url, { cache: "no-store", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(url + ": HTTP " + response.status);
    return response.json();
  }

  function showError(err) {
    const el = document.getElementById("refresh-error");
    el.textContent = "Could not refresh (" + err.message + ")" +
      (lastGood ? "; showing data from " + when(lastGood.toISOString()) : "");
    el.hidden = false;
    document.body.classList.add("stale");
  }

  async function refresh() {
    try {
      const health = await getJson(HEALTH_URL);
      councils = health.councils;
      renderOverall(health);
      renderTable();
      lastGood = new Date();
      document.getElementById("refresh-error").hidden = true;
      document.body.classList.remove("stale");
    } catch (err) {
      showError(err);
    }
    if (tick % HISTORY_EVERY === 0) {
      try {
        renderHistory(await getJson(HISTORY_URL));
      } catch (err) {
        document.getElementById("lag-chart").textContent = "Could not load the history (" +
          err.message + ").";
        tick -= 1; // try again on the next refresh
      }
    }
    tick += 1;
    setTimeout(refresh, REFRESH_MS);
  }

  document.querySelectorAll("#councils th").forEach(function (th) {
    th.addEventListener("click", function () {
      if (sortKey === th.dataset.key) {
        descending = !descending;
      } else {
        sortKey = th.dataset.key;
        descending = sortKey === "status"; // worst first; everything else ascending
      }
      renderTable();
    });
  });

  refresh();
})();
