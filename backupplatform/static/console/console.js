/* The operators' console: live progress, toasts and in-place status badges from the
 * platform's WebSocket (/ws, signed in with the admin session), and forms that start work
 * without leaving the page. Plain JavaScript, no library, no build step.
 *
 * Markup it drives:
 *   [data-op="<operation id>"]        a progress panel: .bar > span, .pct, .bytes, .rate, .eta, .step, .status
 *   [data-backup-status="<id>"]       a backup's status badge
 *   #running-list                     where operations that start while the page is open appear
 *   form[data-live-submit]            posted with fetch; the answer's operation gets a panel in
 *                                     the element named by data-live-target
 *   #toasts                           toasts for completed/failed work and alerts
 */
(function () {
  "use strict";

  var ops = {};          // operation id -> the newest state seen (events merged)
  // What arrived, for people debugging a dashboard (and the browser tests): the last 200 events.
  var live = window.consoleLive = {connected: false, events: 0, toasts: 0, ops: ops, log: []};

  // --- human units (decimal, like backupplatform/humanize.py) -----------------------
  var UNITS = ["B", "KB", "MB", "GB", "TB", "PB"];
  function size(n) {
    if (n === null || n === undefined) return "";
    var amount = Math.max(0, Number(n)), i = 0;
    while (amount >= 1000 && i < UNITS.length - 1) { amount /= 1000; i++; }
    if (i === 0) return Math.round(amount) + " B";
    return (amount < 10 ? amount.toFixed(1) : Math.round(amount)) + " " + UNITS[i];
  }
  function clock(s) {
    if (s === null || s === undefined) return "";
    s = Math.max(0, Math.round(Number(s)));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    function two(x) { return (x < 10 ? "0" : "") + x; }
    return (h ? h + ":" + two(m) : m) + ":" + two(sec);
  }
  live.size = size;

  // --- operations -------------------------------------------------------------------
  var DONE = {completed: 1, failed: 1, cancelled: 1};
  var STATUS_WORDS = {in_progress: "running", running: "running", pending: "queued", completed: "completed",
                      failed: "failed", cancelled: "cancelled"};

  function merge(ev) {
    var id = ev.operation_id || ev.job_id;
    if (!id) return null;
    var prev = ops[id] || {};
    if (DONE[prev.status] && !DONE[ev.status]) return prev;   // a late progress event after the end
    var next = {};
    Object.keys(prev).forEach(function (k) { next[k] = prev[k]; });
    Object.keys(ev).forEach(function (k) { if (ev[k] !== null && ev[k] !== undefined) next[k] = ev[k]; });
    // Progress never goes backwards on screen.
    next.progress = Math.max(Number(prev.progress || 0), Number(ev.progress || 0));
    if (ev.status === "completed") next.progress = 100;
    if (ev.bytes_done === undefined && ev.bytes_processed !== undefined) next.bytes_done = ev.bytes_processed;
    ops[id] = next;
    return next;
  }

  function setText(root, sel, text) {
    var el = root.querySelector(sel);
    if (el) el.textContent = text;
  }

  function render(el, s) {
    var pct = Math.min(100, Math.max(0, Math.round(Number(s.progress || 0))));
    var bar = el.querySelector(".bar > span");
    if (bar) bar.style.width = pct + "%";
    var meter = el.querySelector("[role=progressbar]");
    if (meter) meter.setAttribute("aria-valuenow", String(pct));
    el.dataset.progress = String(pct);
    el.dataset.status = s.status || "";
    setText(el, ".pct", pct + " %");
    var done = Number(s.bytes_done || 0), total = s.bytes_total;
    // While running, the total is the source's estimated size; at the end the bytes are what was done.
    setText(el, ".bytes", total && !DONE[s.status] ? size(done) + " of ~" + size(total) : (done ? size(done) : ""));
    setText(el, ".rate", s.throughput_bps && !DONE[s.status] ? size(s.throughput_bps) + "/s" : "");
    var eta = s.eta_seconds !== undefined && s.eta_seconds !== null ? s.eta_seconds : null;
    setText(el, ".eta", !DONE[s.status] && (eta !== null || s.eta) ? "ETA " + (eta !== null ? clock(eta) : s.eta) : "");
    setText(el, ".step", s.current_step || "");
    var badge = el.querySelector(".status");
    if (badge) {
      var word = STATUS_WORDS[s.status] || s.status || "";
      badge.textContent = word;
      badge.className = "status badge badge-" + word;
    }
    if (s.error) setText(el, ".op-error", s.error);
    el.classList.toggle("op-done", !!DONE[s.status]);
  }

  function panelFor(id, label) {
    var el = document.createElement("div");
    el.className = "op-panel";
    el.dataset.op = id;
    el.innerHTML = '<div class="op-head"><span class="op-label"></span> <span class="status badge"></span></div>' +
      '<div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0"><span></span></div>' +
      '<div class="op-figures"><b class="pct">0 %</b> <span class="bytes"></span> <span class="rate"></span> ' +
      '<span class="eta"></span> <span class="step"></span></div><div class="op-error"></div>';
    el.querySelector(".op-label").textContent = label || id;
    return el;
  }

  function applyEvent(ev) {
    var s = merge(ev);
    if (!s) return;
    var id = ev.operation_id || ev.job_id;
    var panels = document.querySelectorAll('[data-op="' + id + '"]');
    if (!panels.length && !DONE[s.status]) {
      var list = document.getElementById("running-list");
      if (list && /_progress$/.test(ev.type || "")) {
        var empty = list.querySelector(".empty");
        if (empty) empty.remove();
        var kind = (ev.type || "").replace("_progress", "");
        var panel = panelFor(id, kind + (ev.backup_id ? " of backup " + ev.backup_id : "") + " (" + id + ")");
        list.appendChild(panel);
        panels = [panel];
      }
    }
    Array.prototype.forEach.call(panels, function (el) { render(el, s); });
    // The overview's "Running now" card counts what is still going.
    var card = document.querySelector("#card-running .n");
    var list = document.getElementById("running-list");
    if (card && list) card.textContent = String(list.querySelectorAll(".op-panel:not(.op-done)").length);
  }

  // --- toasts and badges ------------------------------------------------------------
  function toast(level, text, href) {
    var box = document.getElementById("toasts");
    if (!box) return;
    var t = document.createElement(href ? "a" : "div");
    t.className = "toast toast-" + level;
    t.setAttribute("role", level === "error" ? "alert" : "status");
    if (href) t.href = href;
    t.textContent = text;
    box.appendChild(t);
    live.toasts++;
    setTimeout(function () { t.classList.add("toast-hide"); }, level === "error" ? 15000 : 8000);
    setTimeout(function () { t.remove(); }, level === "error" ? 16000 : 9000);
  }
  live.toast = toast;

  function badge(backupId, status) {
    document.querySelectorAll('[data-backup-status="' + backupId + '"]').forEach(function (el) {
      el.textContent = status;
      el.className = "badge badge-" + status;
    });
  }

  var ADMIN = (document.body && document.body.dataset.adminRoot) || "/admin/";

  function handle(ev) {
    live.events++;
    live.log.push(ev);
    if (live.log.length > 200) live.log.shift();
    var type = ev.type || "";
    if (/_progress$/.test(type)) { applyEvent(ev); return; }
    if (type === "backup_started") { badge(ev.backup_id, "running"); return; }
    if (/^backup_(completed|failed|cancelled)$/.test(type)) {
      var status = type.slice(7);
      badge(ev.backup_id, status);
      applyEvent({operation_id: ev.job_id, status: status, error: ev.error});
      var href = ADMIN + "backups/backup/" + ev.backup_id + "/change/";
      if (status === "completed") toast("success", "Backup " + (ev.name || ev.backup_id) + " completed" +
                                        (ev.size ? " (" + size(ev.size) + ")" : ""), href);
      else toast(status === "failed" ? "error" : "warning", "Backup " + (ev.name || ev.backup_id) + " " + status +
                 (ev.error ? ": " + ev.error : ""), href);
      return;
    }
    if (/^restore_(completed|failed|cancelled)$/.test(type)) {
      var rstatus = type.slice(8);
      applyEvent({operation_id: ev.restore_id, status: rstatus, error: ev.error});
      var label = document.querySelector('[data-op="' + ev.restore_id + '"] .op-label');
      var what = label ? label.textContent.replace(/ started\.?$/, "") : "Restore " + ev.restore_id;
      toast(rstatus === "completed" ? "success" : "error", what + ": " + rstatus + (ev.error ? ": " + ev.error : ""));
      return;
    }
    if (/^verification_/.test(type)) {
      toast(ev.passed ? "success" : "error", "Verification of backup " + ev.backup_id + ": " +
            (ev.passed ? "passed" : "did not pass"), ADMIN + "backups/backup/" + ev.backup_id + "/change/");
      return;
    }
    if (type === "notification" && /storage|quota/.test(ev.event || "") && ev.level !== "info") {
      toast(ev.level === "critical" || ev.level === "error" ? "error" : "warning", ev.title || ev.message || ev.event);
    }
  }

  // --- the socket -------------------------------------------------------------------
  var delay = 1000;
  function connect() {
    var root = document.getElementById("console-live");
    if (!root || !window.WebSocket) return;
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + root.dataset.ws);
    var ping = null;
    ws.onopen = function () {
      live.connected = true; delay = 1000;
      document.documentElement.dataset.live = "on";
      ping = setInterval(function () { ws.send('{"type": "ping"}'); }, 25000);
    };
    ws.onmessage = function (m) {
      try { handle(JSON.parse(m.data)); } catch (e) { /* not ours */ }
    };
    ws.onclose = function (e) {
      live.connected = false;
      document.documentElement.dataset.live = "off";
      clearInterval(ping);
      if (e.code === 4401 || e.code === 4403) return;    // signed out or no tenant left
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  // --- forms that start work ----------------------------------------------------------
  function csrf() {
    var m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : (m ? decodeURIComponent(m[1]) : "");
  }

  function showErrors(form, errors) {
    form.querySelectorAll(".live-error").forEach(function (el) { el.remove(); });
    Object.keys(errors).forEach(function (name) {
      var list = document.createElement("ul");
      list.className = "errorlist live-error";
      errors[name].forEach(function (msg) {
        var li = document.createElement("li");
        li.textContent = msg;
        list.appendChild(li);
      });
      var field = name === "__all__" ? null : form.querySelector('[name="' + name + '"]');
      var row = field && (field.closest(".form-row") || field.closest("p") || field.parentNode);
      if (row) row.insertBefore(list, row.firstChild); else form.insertBefore(list, form.firstChild);
    });
  }

  function liveSubmit(form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var button = form.querySelector("[type=submit]");
      if (button) button.disabled = true;
      fetch(form.action || location.href, {
        method: "POST", body: new FormData(form), credentials: "same-origin",
        headers: {"Accept": "application/json", "X-CSRFToken": csrf()}
      }).then(function (r) { return r.json().then(function (body) { return {status: r.status, body: body}; }); })
        .then(function (res) {
          if (button) button.disabled = res.status === 201 && form.hasAttribute("data-restore-wizard");
          if (res.status !== 201) { showErrors(form, res.body.errors || {"__all__": ["The request failed."]}); return; }
          showErrors(form, {});
          var op = res.body.operation;
          var target = document.getElementById(form.dataset.liveTarget || "live-panel");
          var panel = panelFor(op.operation_id, res.body.message);
          var link = document.createElement("a");
          link.href = res.body.operation_url;
          link.textContent = "details";
          link.className = "op-link";
          panel.querySelector(".op-head").appendChild(link);
          if (target) {
            target.hidden = false;
            (target.querySelector(".live-ops") || target).prepend(panel);
          }
          applyEvent(Object.assign({}, op, {type: "start"}));
          toast("info", res.body.message);
        })
        .catch(function () {
          if (button) button.disabled = false;
          showErrors(form, {"__all__": ["The platform could not be reached; try again."]});
        });
    });
  }

  // --- restore wizard: say what will happen before it does ----------------------------
  function wizardSummary(form) {
    var out = document.getElementById("restore-summary");
    if (!out) return;
    function val(name) {
      var el = form.querySelector('[name="' + name + '"]:checked') || form.querySelector('[name="' + name + '"]');
      if (!el) return "";
      if (el.tagName === "SELECT") return el.selectedIndex >= 0 ? el.options[el.selectedIndex].text : "";
      return el.value;
    }
    function label(name) {
      var el = form.querySelector('[name="' + name + '"]:checked');
      return el ? (el.closest("label") || el.parentNode).textContent.trim() : "";
    }
    var update = function () {
      var point = label("restore_point") || "the chosen backup";
      var db = val("target_database"), path = val("target_path"), server = val("target_server");
      var overwrite = val("strategy") === "overwrite";
      var masked = [];
      form.querySelectorAll('[name^="mask_column_"]').forEach(function (el) {
        if (el.value.trim()) masked.push(el.value.trim());
      });
      var text = "Restore " + point.split("\n")[0] + " into ";
      text += db ? "database " + db + (server ? " on " + server : "") : (path ? "folder " + path : "a new copy next to the source");
      text += overwrite ? ". Its current content will be REPLACED (after the restore succeeds)." :
        ". A new database/folder is created; nothing existing is touched.";
      var tables = [];
      form.querySelectorAll('[name="tables"]:checked').forEach(function (el) { tables.push(el.value); });
      var typed = form.querySelector('input[type="text"][name="tables"]');
      if (typed && typed.value.trim()) tables = typed.value.split(",").map(function (t) { return t.trim(); }).filter(Boolean);
      if (tables.length) text += " Only " + (tables.length === 1 ? "table " : "tables ") + tables.join(", ") + ".";
      var paths = (val("paths") || "").split("\n").map(function (t) { return t.trim(); }).filter(Boolean);
      if (paths.length) text += " Only " + paths.join(", ") + " of the folder.";
      if (masked.length) text += " Masked columns: " + masked.join(", ") + ".";
      out.textContent = text;
      out.classList.toggle("danger", overwrite);
    };
    form.addEventListener("input", update);
    form.addEventListener("change", update);
    update();
  }

  function start() {
    // The admin's home is the overview: its breadcrumb says so on every page.
    document.querySelectorAll('.breadcrumbs a[href="' + ADMIN + '"]').forEach(function (a) {
      if (a.textContent.trim() === "Home") a.textContent = "Overview";
    });
    document.querySelectorAll("[data-op-state]").forEach(function (el) {
      try { applyEvent(JSON.parse(el.dataset.opState)); } catch (e) { /* ignore */ }
    });
    document.querySelectorAll("form[data-live-submit]").forEach(liveSubmit);
    document.querySelectorAll("form[data-restore-wizard]").forEach(wizardSummary);
    connect();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

/* Storage and notification channel forms: show the fields of the chosen type only. */
(function () {
  "use strict";
  function follow(data) {
    var spec = JSON.parse(data.textContent);
    var all = {};
    Object.keys(spec.fields).forEach(function (t) { spec.fields[t].forEach(function (f) { all[f] = true; }); });
    var select = document.getElementById("id_type");
    var listsClear = all.clear_secrets;  // else: shown where the type has a secret field
    function show() {
      var kind = select ? select.value : spec.current;
      var wanted = {};
      (spec.fields[kind] || []).forEach(function (f) { wanted[f] = true; });
      Object.keys(all).forEach(function (f) {
        document.querySelectorAll(".form-row.field-" + f + ", .fieldBox.field-" + f).forEach(function (row) {
          row.hidden = !wanted[f];
        });
      });
      if (!listsClear) {
        document.querySelectorAll(".form-row.field-clear_secrets").forEach(function (row) {
          row.hidden = !(spec.fields[kind] || []).some(function (f) { return /key|secret|password|token|json|string|passphrase/.test(f); });
        });
      }
    }
    if (select) select.addEventListener("change", show);
    show();
  }
  function start() {
    document.querySelectorAll("script[data-type-fields]").forEach(follow);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

/* Job form: the next five runs, recomputed as the schedule fields change. */
(function () {
  "use strict";
  function start() {
    var out = document.getElementById("schedule-preview");
    var form = out && out.closest("form");
    if (!form) return;
    var names = ["schedule_type", "cron_expression", "schedule_time", "days_of_week", "day_of_month", "timezone"];
    var timer = null;
    function refresh() {
      var params = new URLSearchParams();
      names.forEach(function (n) {
        form.querySelectorAll('[name="' + n + '"]').forEach(function (el) {
          if ((el.type === "checkbox" || el.type === "radio") && !el.checked) return;
          params.append(n, el.value);
        });
      });
      fetch(out.dataset.url + "?" + params.toString(), {credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (body) {
          out.textContent = "";
          if (body.error) {
            var err = document.createElement("div");
            err.className = "error-text";
            err.textContent = body.error;
            out.appendChild(err);
            return;
          }
          var cron = document.createElement("div");
          cron.className = "sub";
          cron.textContent = "cron: " + body.cron;
          out.appendChild(cron);
          body.runs.forEach(function (r) {
            var line = document.createElement("div");
            line.textContent = r.local === r.utc + " UTC" ? r.local : r.local + " (" + r.utc + " UTC)";
            out.appendChild(line);
          });
        });
    }
    // Only the fields the chosen frequency uses.
    var uses = {cron: ["cron_expression"], custom: ["cron_expression"], hourly: ["schedule_time"],
                daily: ["schedule_time", "days_of_week"], weekly: ["schedule_time", "days_of_week"],
                monthly: ["schedule_time", "day_of_month"]};
    function toggle() {
      var kind = form.querySelector('[name="schedule_type"]');
      var wanted = uses[kind ? kind.value : "cron"] || [];
      ["cron_expression", "schedule_time", "days_of_week", "day_of_month"].forEach(function (f) {
        form.querySelectorAll(".form-row.field-" + f).forEach(function (row) { row.hidden = wanted.indexOf(f) < 0; });
      });
    }
    toggle();
    form.addEventListener("change", function (e) {
      if (e.target.name === "schedule_type") toggle();
      if (names.indexOf(e.target.name) < 0) return;
      clearTimeout(timer);
      timer = setTimeout(refresh, 200);
    });
    form.addEventListener("input", function (e) {
      if (e.target.name !== "cron_expression") return;
      clearTimeout(timer);
      timer = setTimeout(refresh, 400);
    });
    refresh();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
