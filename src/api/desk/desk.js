// qqfleet desk: rows from GET /api/events (server-sent events), actions through the admin
// API. The admin token is in an HttpOnly cookie this script cannot read; every action adds
// the x-qqfleet-desk header the API asks of cookie-authenticated changes.
"use strict";

const rows = new Map(); // account id -> status object
const ORDER = ["awaiting_scan", "parked", "stopped", "invalid", "backoff", "logging_in", "starting", "online"];
const ATTENTION = new Set(["awaiting_scan", "parked", "stopped", "invalid", "backoff"]);

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function ms(t) { return t ? Date.parse(t) : NaN; }

function age(t) {
  const v = ms(t);
  if (isNaN(v)) return "—";
  return span(Date.now() - v) + " ago";
}

function span(d) {
  const s = Math.max(0, Math.round(d / 1000));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 172800) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d";
}

// "needs a scan in about 7 h", from the session's expiry estimate.
function forecast(st) {
  if (!st.session) return null;
  const left = ms(st.session.expires_at_estimate) - Date.now();
  if (isNaN(left)) return null;
  const h = left / 3600000;
  let text;
  if (left <= 0) text = "needs a scan now";
  else if (h < 1) text = "needs a scan in about " + Math.max(1, Math.round(left / 60000)) + " min";
  else text = "needs a scan in about " + Math.round(h) + " h";
  return { text, soon: h < 6 };
}

// The scan window's renewal: "renewal scan due at …", or waiting for its scan.
function renewal(st) {
  if (st.renewing) return el("span", { class: "soon renewal" }, el("br"), "renewal scan waiting");
  if (!st.session || !st.session.renew_at) return "";
  const at = new Date(ms(st.session.renew_at));
  return el("span", { class: "muted renewal" }, el("br"), "renewal scan due at " + at.toLocaleString());
}

function visible(st) {
  const f = $("filter").value;
  if (f === "attention" && !ATTENTION.has(st.state)) return false;
  if (f && f !== "attention" && st.state !== f) return false;
  const q = $("search").value.trim().toLowerCase();
  if (q && !st.id.toLowerCase().includes(q) && !String(st.qq ?? "").includes(q)) return false;
  return true;
}

function sorted() {
  return [...rows.values()].sort((a, b) => {
    const d = ORDER.indexOf(a.state) - ORDER.indexOf(b.state);
    return d !== 0 ? d : a.id.localeCompare(b.id);
  });
}

function qrSrc(st) {
  // The expiry names the code: a new code is a new URL, so the browser fetches it.
  return "/api/accounts/" + encodeURIComponent(st.id) + "/qr?v=" + encodeURIComponent(st.qr ? st.qr.expires_at : st.since);
}

function renderScans() {
  const box = $("scans");
  // A renewal scan (the old session still online) is shown like a first one.
  const want = sorted().filter((st) => (st.state === "awaiting_scan" || (st.renewing && st.qr)) && visible(st));
  const keep = new Set(want.map((s) => s.id));
  for (const card of [...box.children]) if (!keep.has(card.dataset.account)) card.remove();
  let prev = null;
  for (const st of want) {
    let card = box.querySelector('.scan[data-account="' + CSS.escape(st.id) + '"]');
    if (!card) {
      card = el("div", { class: "scan", "data-account": st.id },
        el("div", { class: "who" }),
        el("img", { alt: "QR code for " + st.id }),
        el("div", { class: "countdown" }));
    }
    card.querySelector(".who").textContent = st.id + " · QQ " + (st.qq ?? "?") + (st.renewing ? " · renewal" : "");
    const img = card.querySelector("img");
    const src = qrSrc(st);
    if (img.getAttribute("src") !== src) img.setAttribute("src", src);
    card.dataset.expires = st.qr ? st.qr.expires_at : "";
    if (prev ? prev.nextSibling !== card : box.firstChild !== card) {
      if (prev) prev.after(card); else box.prepend(card);
    }
    prev = card;
  }
  tick();
}

function actionButtons(st) {
  const td = el("td", { "data-label": "actions" });
  td.append(el("button", { type: "button", onclick: () => act(st.id, "restart", "Restart " + st.id + "?") }, "restart"));
  if (st.state === "online") {
    td.append(el("button", { type: "button", onclick: () => act(st.id, "contacts/refresh", "Refresh the contacts of " + st.id + "?") }, "refresh contacts"));
  }
  if (st.held) {
    td.append(el("button", { type: "button", onclick: () => showHeld(st.id) }, "held (" + st.held + ")"));
  }
  return td;
}

function row(st) {
  const fc = forecast(st);
  const session = st.session
    ? el("span", {}, span(Date.now() - ms(st.session.logged_in_at)), el("br"),
        el("span", { class: fc && fc.soon ? "soon" : "muted" }, fc ? fc.text : ""),
        renewal(st))
    : el("span", { class: "muted" }, "—");
  return el("tr", { "data-account": st.id, "data-state": st.state },
    el("td", { "data-label": "id" }, st.id),
    el("td", { "data-label": "QQ", class: "num" }, st.qq ?? "?"),
    el("td", { "data-label": "state" }, el("span", { class: "state st-" + st.state }, st.state)),
    el("td", { "data-label": "since", class: "num", "data-since": st.since }, age(st.since)),
    el("td", { "data-label": "last poll", class: "num", "data-since": st.last_poll_at || "" }, age(st.last_poll_at)),
    el("td", { "data-label": "session" }, session),
    el("td", { "data-label": "retcodes 1 h", class: "num" }, st.retcodes_last_hour ?? 0),
    el("td", { "data-label": "outbox", class: "num" }, st.outbox ?? "—"),
    el("td", { "data-label": "held", class: "num" }, st.held ?? "—"),
    el("td", { "data-label": "last error", class: "err" }, st.error || ""),
    actionButtons(st));
}

function render() {
  const body = $("rows");
  const list = sorted();
  const shown = list.filter(visible);
  body.replaceChildren(...shown.map(row));
  $("empty").hidden = shown.length > 0;
  const counts = {};
  for (const st of list) counts[st.state] = (counts[st.state] || 0) + 1;
  $("summary").replaceChildren(el("span", {}, list.length + " accounts"),
    ...ORDER.filter((s) => counts[s]).map((s) => el("span", {}, el("span", { class: "state st-" + s }, s), " " + counts[s])));
  renderScans();
}

// Local clock only: ages and countdowns move between server events without asking it.
function tick() {
  for (const td of document.querySelectorAll("td[data-since]")) {
    td.textContent = age(td.dataset.since);
  }
  for (const card of document.querySelectorAll(".scan")) {
    const c = card.querySelector(".countdown");
    const left = ms(card.dataset.expires) - Date.now();
    if (isNaN(left)) { c.textContent = ""; continue; }
    const s = Math.ceil(left / 1000);
    c.textContent = left > 0
      ? "expires in " + Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0")
      : "expired, a new code is on its way";
    c.classList.toggle("late", left < 20000);
  }
}

let renderQueued = false;
function queueRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

function connect() {
  const es = new EventSource("/api/events");
  const live = $("live");
  es.onopen = () => { live.className = "live on"; live.textContent = "live"; };
  es.onerror = () => {
    // EventSource reconnects by itself; the server starts each stream with a snapshot.
    live.className = "live off"; live.textContent = "reconnecting…";
  };
  let fresh = true;
  es.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    if (ev.kind === "snapshot" && fresh) { rows.clear(); fresh = false; }
    if (ev.kind !== "snapshot") fresh = true;
    if (ev.kind === "removed") rows.delete(ev.account);
    else if (ev.status) rows.set(ev.account, ev.status);
    queueRender();
  };
  es.addEventListener("open", () => { fresh = true; });
}

function ask(text) {
  return new Promise((resolve) => {
    const d = $("confirm");
    $("confirm-text").textContent = text;
    d.returnValue = "";
    d.onclose = () => resolve(d.returnValue === "yes");
    d.showModal();
  });
}

async function call(method, path) {
  const r = await fetch(path, { method, headers: { "x-qqfleet-desk": "1" }, credentials: "same-origin" });
  let body = null;
  try { body = await r.json(); } catch { /* empty */ }
  if (!r.ok) throw new Error((body && body.error) || r.status + " " + r.statusText);
  return body;
}

async function act(id, what, question) {
  if (!(await ask(question))) return;
  try { await call("POST", "/api/accounts/" + encodeURIComponent(id) + "/" + what); }
  catch (e) { alert(id + ": " + e.message); }
}

async function showHeld(id) {
  const d = $("held");
  $("held-title").textContent = "Held messages of " + id;
  const list = $("held-list");
  list.replaceChildren(el("li", { class: "muted" }, "loading…"));
  if (!d.open) d.showModal();
  let out;
  try { out = await call("GET", "/api/accounts/" + encodeURIComponent(id) + "/outbox"); }
  catch (e) { list.replaceChildren(el("li", { class: "err" }, e.message)); return; }
  const held = out.held || [];
  if (!held.length) { list.replaceChildren(el("li", { class: "muted" }, "none")); return; }
  list.replaceChildren(...held.map((m) => {
    const base = "/api/accounts/" + encodeURIComponent(id) + "/held/" + m.seq;
    const text = typeof m.text === "string" ? m.text : JSON.stringify(m);
    return el("li", {},
      el("div", {}, "#" + m.seq + " " + text),
      el("button", { type: "button", onclick: async () => {
        if (!(await ask("Send held message #" + m.seq + " of " + id + " again?"))) return showHeld(id);
        try { await call("POST", base + "/resend"); } catch (e) { alert(e.message); }
        showHeld(id);
      } }, "resend"),
      el("button", { type: "button", onclick: async () => {
        if (!(await ask("Drop held message #" + m.seq + " of " + id + " for good?"))) return showHeld(id);
        try { await call("DELETE", base); } catch (e) { alert(e.message); }
        showHeld(id);
      } }, "drop"));
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  $("filter").addEventListener("change", render);
  $("search").addEventListener("input", render);
  setInterval(tick, 1000);
  connect();
});
