// The sonic-fsm voice page: microphone -> WebSocket -> conversation -> speaker.
// The protocol is in the README ("Voice server"). `?raw` turns the browser's echo
// cancellation, noise suppression and gain control off (line-in, tests); `?tap` keeps what
// was sent and what was played, for window.sonic.tap() (tests).
"use strict";

const params = new URLSearchParams(location.search);
const RAW = params.has("raw");
const TAP = params.has("tap");
const $ = (id) => document.getElementById(id);

// A growable 16-bit timeline: play(at, pcm) writes at a sample offset and drops whatever
// was after it; cut(at) drops everything from ``at`` (what a flush took off the speaker).
class Timeline {
  constructor() { this.data = new Int16Array(1 << 16); this.length = 0; }
  play(at, pcm) {
    at = Math.max(0, at);
    while (this.data.length < at + pcm.length) {
      const bigger = new Int16Array(this.data.length * 2);
      bigger.set(this.data.subarray(0, this.length));
      this.data = bigger;
    }
    if (at > this.length) this.data.fill(0, this.length, at);
    this.data.set(pcm, at);
    this.length = at + pcm.length;
  }
  append(pcm) { this.play(this.length, pcm); }
  cut(at) { this.length = Math.max(0, Math.min(this.length, at)); }
  base64() {
    const bytes = new Uint8Array(this.data.buffer, 0, this.length * 2);
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(s);
  }
}

// The speaker: AudioBufferSourceNodes scheduled back to back (gapless), all stopped at once
// on barge-in; what has really played is reported as a running total of bytes.
class Speaker {
  constructor(rate) {
    this.rate = rate;
    this.ctx = new AudioContext({ sampleRate: rate, latencyHint: "interactive" });
    this.next = 0;
    this.scheduled = [];
    this.playedDone = 0;
    this.delivered = 0;
    this.t0 = 0; // context time the capture started at: the tap's zero
    this.tap = TAP ? new Timeline() : null;
  }
  offset(t) { return Math.round((t - this.t0) * this.rate); }
  play(pcm) {
    const ctx = this.ctx;
    const f = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) f[i] = pcm[i] / 32768;
    const buf = ctx.createBuffer(1, f.length, this.rate);
    buf.copyToChannel(f, 0);
    const src = ctx.createBufferSource();
    src.buffer = buf;
    src.connect(ctx.destination);
    const start = Math.max(this.next, ctx.currentTime + 0.03);
    src.start(start);
    this.next = start + pcm.length / this.rate;
    this.scheduled.push({ src, start, end: this.next, bytes: pcm.length * 2 });
    this.delivered += pcm.length * 2;
    if (this.tap) this.tap.play(this.offset(start), pcm);
  }
  partial(s, now) {
    if (now <= s.start) return 0;
    return Math.min(s.bytes, 2 * Math.floor((Math.min(now, s.end) - s.start) * this.rate));
  }
  played() {
    const now = this.ctx.currentTime;
    while (this.scheduled.length && this.scheduled[0].end <= now) {
      this.playedDone += this.scheduled.shift().bytes;
    }
    let total = this.playedDone;
    for (const s of this.scheduled) total += this.partial(s, now);
    return Math.min(total, this.delivered);
  }
  flush() {
    const now = this.ctx.currentTime;
    for (const s of this.scheduled) {
      this.playedDone += this.partial(s, now);
      try { s.src.stop(); } catch (e) { /* not started yet */ }
    }
    this.scheduled = [];
    this.next = 0;
    if (this.tap) this.tap.cut(this.offset(now));
  }
  queuedSeconds() { return Math.max(0, this.next - this.ctx.currentTime); }
}

const ui = {
  line(list, cls, who, text) {
    const li = document.createElement("li");
    li.className = cls;
    const w = document.createElement("span");
    w.className = "who";
    w.textContent = who;
    li.append(w, document.createTextNode(text));
    list.append(li);
    while (list.children.length > 300) list.firstChild.remove();
    list.parentElement.scrollTop = list.parentElement.scrollHeight;
    return li;
  },
  transcript(e) {
    const list = $("transcript");
    if (e.stage === "final" && e.role === "assistant") {
      for (const li of list.querySelectorAll("li.speculative")) {
        if (li.dataset.session === e.session_id && li.dataset.text === e.text) {
          li.className = "assistant";
          return;
        }
      }
    }
    const cls = e.role === "user" ? "user" : e.stage === "final" ? "assistant" : e.stage;
    const li = this.line(list, cls, e.role, " " + e.text);
    li.dataset.session = e.session_id;
    li.dataset.text = e.text;
  },
  snapshot(s) {
    $("state").textContent = s.state;
    $("state").className = "state " + s.state;
    $("age-text").textContent = `${s.session_age_seconds.toFixed(1)} s of ${s.limit_seconds} s`;
    $("age-bar").style.width = `${Math.min(100, (100 * s.session_age_seconds) / s.limit_seconds)}%`;
    $("age-threshold").style.left = `${(100 * s.threshold_seconds) / s.limit_seconds}%`;
    $("age-deadline").style.left = `${(100 * s.hard_deadline_seconds) / s.limit_seconds}%`;
    $("buffer-text").textContent =
      `${(s.buffer_bytes / 1000).toFixed(0)} KB of ${(s.buffer_cap_bytes / 1000).toFixed(0)} KB`;
    $("buffer-bar").style.width = `${(100 * s.buffer_bytes) / s.buffer_cap_bytes}%`;
    $("handoffs").textContent = s.handoffs;
    $("played").textContent = `${s.played_seconds.toFixed(1)} s`;
    $("sessions").textContent = s.sessions.map((x) => `${x.id} ${x.role}`).join(", ") || "-";
  },
};

const page = {
  ws: null,
  speaker: null,
  mic: null,
  sent: TAP ? new Timeline() : null,
  stats: { messages: 0, audioIn: 0, audioOut: 0, stops: 0, handoffs: 0, ended: null, closed: null },
  timer: null,
};

function send(obj) {
  if (page.ws && page.ws.readyState === WebSocket.OPEN) page.ws.send(JSON.stringify(obj));
}

function onMessage(m) {
  page.stats.messages++;
  if (m.data instanceof ArrayBuffer) {
    page.stats.audioOut += m.data.byteLength;
    page.speaker.play(new Int16Array(m.data));
    return;
  }
  const e = JSON.parse(m.data);
  switch (e.type) {
    case "stop_playback":
      page.stats.stops++;
      page.speaker.flush();
      break;
    case "transcript":
      ui.transcript(e);
      break;
    case "state":
      ui.line($("transitions"), "", `${e.at.toFixed(1)}s`, ` ${e.source} → ${e.dest} (${e.trigger})`);
      break;
    case "handoff_done":
      page.stats.handoffs++;
      $("last-handoff").textContent = `${e.took_ms.toFixed(0)} ms`;
      ui.line($("transcript"), "handoff", "hand-off", ` ${e.from_session} → ${e.to_session}`);
      break;
    case "error":
      ui.line($("transitions"), "interrupted", `${e.at.toFixed(1)}s`, ` ${e.code}: ${e.message}`);
      break;
    case "snapshot":
      ui.snapshot(e);
      break;
    case "ended":
      page.stats.ended = e.reason;
      $("connection").textContent = `ended: ${e.reason}`;
      break;
  }
}

async function start() {
  $("start").disabled = true;
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  page.ws = ws;
  const ready = await new Promise((resolve, reject) => {
    ws.onmessage = (m) => resolve(JSON.parse(m.data));
    ws.onerror = () => reject(new Error("the WebSocket did not open"));
  });
  ws.onmessage = onMessage;
  ws.onclose = (c) => {
    page.stats.closed = { code: c.code, reason: c.reason };
    $("connection").textContent = page.stats.ended ? `ended: ${page.stats.ended}` : `closed (${c.code}) ${c.reason}`;
    stopCapture();
  };
  page.speaker = new Speaker(ready.output_rate);
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: !RAW, noiseSuppression: !RAW, autoGainControl: !RAW },
  });
  const ctx = new AudioContext({ sampleRate: ready.input_rate });
  await ctx.audioWorklet.addModule("/static/capture-worklet.js");
  const node = new AudioWorkletNode(ctx, "capture");
  node.port.onmessage = (m) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    ws.send(m.data);
    page.stats.audioIn += m.data.byteLength;
    if (page.sent) page.sent.append(new Int16Array(m.data));
  };
  ctx.createMediaStreamSource(stream).connect(node);
  page.speaker.t0 = page.speaker.ctx.currentTime;
  page.mic = { ctx, node, stream };
  page.timer = setInterval(() => {
    send({ type: "played", bytes: page.speaker.played(), queued_seconds: page.speaker.queuedSeconds() });
    $("queued").textContent = `${page.speaker.queuedSeconds().toFixed(2)} s`;
  }, 100);
  $("connection").textContent = "connected";
  for (const id of ["stop", "handoff", "mute"]) $(id).disabled = false;
}

function stopCapture() {
  clearInterval(page.timer);
  if (page.mic) {
    page.mic.stream.getTracks().forEach((t) => t.stop());
    page.mic.ctx.close();
    page.mic = null;
  }
  for (const id of ["stop", "handoff", "mute"]) $(id).disabled = true;
}

let muted = false;
$("start").onclick = () => start().catch((e) => { $("connection").textContent = `error: ${e.message}`; });
$("stop").onclick = () => send({ type: "stop" });
$("handoff").onclick = () => send({ type: "force_handoff" });
$("mute").onclick = () => {
  muted = !muted;
  send({ type: "mute", muted });
  $("mute").textContent = muted ? "Unmute" : "Mute";
};

// For tests: what the page sent and played (with ?tap), and its counters.
window.sonic = {
  stats: () => ({ ...page.stats, played: page.speaker ? page.speaker.played() : 0 }),
  tap: () => ({ sent: page.sent ? page.sent.base64() : "", played: page.speaker && page.speaker.tap ? page.speaker.tap.base64() : "" }),
};
