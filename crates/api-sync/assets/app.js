// Verdict's page: log in, drop files or paste a URL, see each verdict as a tree. It talks to
// the public API only (POST /api/Token, POST /api/Scan, POST /api/Scan/URL), so it is also a
// working example of it. No dependencies, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const HISTORY_KEY = "verdict.history";
const TOKEN_KEY = "verdict.token";
const HISTORY_MAX = 20;

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function showPanels() {
  const loggedIn = Boolean(token());
  $("login-panel").hidden = loggedIn;
  $("scan-panel").hidden = !loggedIn;
  $("logout").hidden = !loggedIn;
  if (loggedIn) { $("drop").focus(); } else { $("password").focus(); }
}

function say(where, text, isError) {
  const el = $(where);
  el.textContent = text || "";
  el.classList.toggle("error", Boolean(isError));
}

/// The sentence to show for a failed request: the server's own words where it gave some.
function failure(status, body) {
  const said = body && typeof body.error === "string" ? body.error : "";
  switch (status) {
    case 0: return "The server could not be reached.";
    case 401: return "Your session has ended: log in again.";
    case 408: return "The upload stalled and was stopped; try again.";
    case 413: return "Too large: " + (said || "the file is over the server's size limit.");
    case 429: return said || "Too many attempts; wait a little.";
    case 503: return "The server is busy; try again in a moment.";
    default: return said || ("The server answered " + status + ".");
  }
}

function parse(text) {
  try { return JSON.parse(text); } catch (_) { return null; }
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  say("login-message", "Logging in…");
  let response;
  try {
    response = await fetch("/api/Token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
    });
  } catch (_) {
    say("login-message", failure(0), true);
    return;
  }
  const body = parse(await response.text());
  if (response.ok && body && body.accessToken) {
    sessionStorage.setItem(TOKEN_KEY, body.accessToken);
    $("password").value = "";
    say("login-message", "");
    showPanels();
  } else if (response.status === 401) {
    say("login-message", "Wrong user name or password.", true);
  } else {
    say("login-message", failure(response.status, body), true);
  }
});

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showPanels();
});

// Dropping and choosing files.
const drop = $("drop");
drop.addEventListener("click", () => $("files").click());
drop.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("files").click(); }
});
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  scanFiles(event.dataTransfer.files);
});
$("files").addEventListener("change", (event) => {
  scanFiles(event.target.files);
  event.target.value = "";
});

function scanFiles(files) {
  for (const file of files) { scanFile(file); }
}

/// Uploads one file with XMLHttpRequest (fetch cannot report upload progress).
function scanFile(file) {
  const entry = pending(file.name, file.size);
  const form = new FormData();
  form.append("documents", file, file.name);
  const request = new XMLHttpRequest();
  request.open("POST", "/api/Scan");
  request.setRequestHeader("Authorization", "Bearer " + token());
  request.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) { entry.progress.value = event.loaded / event.total; }
  });
  request.upload.addEventListener("load", () => {
    entry.progress.removeAttribute("value");
    entry.status.textContent = "Scanning";
  });
  request.addEventListener("load", () => settle(entry, file.name, request.status, parse(request.responseText)));
  request.addEventListener("error", () => settle(entry, file.name, 0, null));
  request.send(form);
}

$("url-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const url = $("url").value.trim();
  if (!url) { return; }
  const entry = pending(url, null);
  entry.progress.removeAttribute("value");
  let status = 0;
  let body = null;
  try {
    const response = await fetch("/api/Scan/URL", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token() },
      body: JSON.stringify({ url }),
    });
    status = response.status;
    body = parse(await response.text());
  } catch (_) { /* status 0: unreachable */ }
  settle(entry, url, status, body);
});

/// A result row that is still on its way.
function pending(name, size) {
  const item = document.createElement("li");
  item.className = "result";
  const head = document.createElement("header");
  const title = document.createElement("h3");
  title.textContent = name;
  const status = document.createElement("span");
  status.className = "badge Scanning";
  status.textContent = "Uploading";
  head.append(title, status);
  const progress = document.createElement("progress");
  progress.max = 1;
  progress.value = 0;
  progress.setAttribute("aria-label", "Upload of " + name);
  item.append(head, progress);
  if (size !== null) {
    const facts = document.createElement("p");
    facts.className = "hint";
    facts.textContent = humanSize(size);
    item.append(facts);
  }
  $("results").prepend(item);
  return { item, status, progress };
}

function settle(entry, name, status, body) {
  if (status === 200 && body && body.result) {
    const rendered = renderResult(name, body);
    entry.item.replaceWith(rendered);
    remember(name, body);
    say("scan-message", "");
    return;
  }
  if (status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    showPanels();
    say("login-message", failure(401), true);
  }
  entry.progress.remove();
  entry.status.className = "badge Refused";
  entry.status.textContent = "Not scanned";
  const why = document.createElement("p");
  why.className = "message error";
  why.textContent = failure(status, body);
  entry.item.append(why);
  say("scan-message", failure(status, body), true);
}

function humanSize(bytes) {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return (unit === 0 ? value : value.toFixed(1)) + " " + units[unit];
}

/// One result: the verdict, the facts, and the tree of what was found where.
function renderResult(name, body) {
  const item = document.createElement("li");
  item.className = "result";
  item.dataset.result = body.result;
  const head = document.createElement("header");
  const title = document.createElement("h3");
  title.textContent = name;
  const badge = document.createElement("span");
  badge.className = "badge " + body.result;
  badge.textContent = body.result;
  head.append(title, badge);
  item.append(head);

  const facts = document.createElement("dl");
  facts.className = "facts";
  const fact = (label, value) => {
    if (value === undefined || value === null || value === "") { return; }
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = value;
    facts.append(dt, dd);
  };
  fact("Type", body.trueFileType);
  if (typeof body.size === "number") { fact("Size", humanSize(body.size)); }
  fact("SHA-256", body.sha256);
  if (typeof body.objectsScanned === "number") { fact("Objects examined", String(body.objectsScanned)); }
  if (body.timings) {
    fact("Time", body.timings.readSeconds.toFixed(3) + " s reading, " + body.timings.scanSeconds.toFixed(3) + " s scanning");
  }
  if (Array.isArray(body.engines) && body.engines.length) {
    fact("Engines", body.engines.map((e) => e.engine + " (" + e.objectsScanned + " examined, " +
      e.detections + " found" + (e.errors ? ", " + e.errors + " failed" : "") +
      (e.objectsSkipped ? ", " + e.objectsSkipped + " skipped" : "") + ")").join("; "));
  }
  if (body.fingerprint) {
    fact("Rules", body.fingerprint + (body.cached ? " (verdict from the cache: these bytes were judged before by these rules)" : ""));
  }
  fact("Scanned", body.dateScanned);
  if (body.uploadedTo) { fact("Stored at", body.uploadedTo); }
  item.append(facts);
  if (body.errorMessage && body.result !== "Infected") {
    const why = document.createElement("p");
    why.className = "problem";
    why.textContent = body.errorMessage;
    item.append(why);
  }
  item.append(renderTree(name, body));
  return item;
}

/// Rows nested deeper than this are not drawn as rows in rows: browsers lay out deep nesting
/// slowly or not at all, and a member's name can hold any number of `/`.
const MAX_TREE_DEPTH = 32;

/// Paths of detections and problems (`upload.zip/inner.zip/eicar.com`) as nested rows, down to
/// MAX_TREE_DEPTH; below that, each finding or problem is one row named by its path from there.
/// Built without recursion, so no path is too deep to draw.
function renderTree(rootName, body) {
  const root = { name: rootName, children: new Map(), findings: [], problems: [] };
  const nodeAt = (path) => {
    let parts = String(path).split("/");
    if (parts[0] === rootName) { parts = parts.slice(1); }
    let node = root;
    for (const part of parts) {
      if (!node.children.has(part)) {
        node.children.set(part, { name: part, children: new Map(), findings: [], problems: [] });
      }
      node = node.children.get(part);
    }
    return node;
  };
  const detections = Array.isArray(body.detections) ? body.detections
    : (body.detectedInfections || []).map((d) => ({ path: d.file, name: d.infection, engine: "" }));
  for (const d of detections) { nodeAt(d.path).findings.push(d); }
  for (const p of body.problems || []) { nodeAt(p.path).problems.push(p); }
  const list = document.createElement("ul");
  list.className = "tree";
  list.setAttribute("role", "tree");
  list.setAttribute("aria-label", "What was found in " + rootName);
  const pending = [{ node: root, label: root.name, into: list, depth: 0 }];
  while (pending.length) {
    const { node, label, into, depth } = pending.pop();
    const item = renderRow(label, node);
    into.append(item);
    if (!node.children.size) { continue; }
    const group = document.createElement("ul");
    group.className = "tree";
    group.setAttribute("role", "group");
    item.append(group);
    const children = [...node.children.values()];
    if (depth + 1 < MAX_TREE_DEPTH) {
      // Reversed onto the stack, so they are drawn in order.
      for (const child of children.reverse()) {
        pending.push({ node: child, label: child.name, into: group, depth: depth + 1 });
      }
    } else {
      for (const { node: below, path } of flatten(children)) { group.append(renderRow(path, below)); }
    }
  }
  return list;
}

/// The nodes under `nodes` that have findings or problems, each with its path from there.
function flatten(nodes) {
  const found = [];
  const pending = nodes.map((node) => ({ node, path: node.name })).reverse();
  while (pending.length) {
    const { node, path } = pending.pop();
    if (node.findings.length || node.problems.length) { found.push({ node, path }); }
    for (const child of [...node.children.values()].reverse()) {
      pending.push({ node: child, path: path + "/" + child.name });
    }
  }
  return found;
}

/// One row: the member's name and what was found in it or kept it from being examined.
function renderRow(label, node) {
  const item = document.createElement("li");
  item.setAttribute("role", "treeitem");
  const name = document.createElement("span");
  name.className = "node-name";
  name.textContent = label;
  item.append(name);
  for (const f of node.findings) {
    const line = document.createElement("span");
    line.className = "finding";
    line.textContent = "Found: " + f.name;
    if (f.engine) {
      const engine = document.createElement("span");
      engine.className = "engine";
      engine.textContent = " (" + f.engine + ")";
      line.append(engine);
    }
    item.append(line);
  }
  for (const p of node.problems) {
    const line = document.createElement("span");
    line.className = "problem";
    line.textContent = "Not examined: " + p.message;
    item.append(line);
  }
  return item;
}

function remember(name, body) {
  const history = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]");
  history.unshift({ name, body });
  sessionStorage.setItem(HISTORY_KEY, JSON.stringify(history.slice(0, HISTORY_MAX)));
}

function restoreHistory() {
  // A stored entry that cannot be drawn is forgotten, so no result can break the page for
  // the rest of the session.
  try {
    const history = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]");
    for (const { name, body } of history.reverse()) { $("results").prepend(renderResult(name, body)); }
  } catch (e) {
    sessionStorage.removeItem(HISTORY_KEY);
    $("results").replaceChildren();
  }
}

/// Each engine, its rule count, its set's version and when it was loaded, from /health (which
/// shows them unless the metrics token guards them).
async function showEngines() {
  const list = $("engines");
  try {
    const health = await (await fetch("/health")).json();
    if (!Array.isArray(health.engines)) {
      list.replaceChildren(Object.assign(document.createElement("li"), { textContent: "not shown here (the metrics token guards them)" }));
      return;
    }
    const rows = health.engines.map((e) => {
      const row = document.createElement("li");
      row.textContent = e.name + ": " + (e.rules === null ? "" : e.rules + " rules, ") + "set " + e.version +
        (e.loaded_at ? ", loaded " + e.loaded_at : "");
      return row;
    });
    rows.push(Object.assign(document.createElement("li"), { textContent: "fingerprint " + health.fingerprint }));
    list.replaceChildren(...rows);
  } catch (e) {
    list.replaceChildren();
  }
}

restoreHistory();
showPanels();
showEngines();
