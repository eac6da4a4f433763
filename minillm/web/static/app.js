// minillm's page: the chat, the token view, the playground and the report card, in plain
// JavaScript against the JSON API of minillm/web/server.py (no framework, no build step).
//
// Safety rule of this file: text from the model or the user is only ever set with
// textContent or append(string), never innerHTML, so "<script>" typed or generated shows
// as characters. The server's Content-Security-Policy refuses inline script as well.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// ---- the API ----------------------------------------------------------------------------

async function getJSON(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

// POST body to path and call onEvent(event) for each server-sent event as it arrives.
async function streamEvents(path, body, signal, onEvent) {
  const response = await fetch(path, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body), signal});
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new Error(data.error || `${response.status} ${response.statusText}`);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const chunk = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of chunk.split("\n")) {
        if (line.startsWith("data: ")) onEvent(JSON.parse(line.slice(6)));
      }
    }
  }
}

function number(id) {
  const value = Number($(id).value);
  return Number.isFinite(value) ? value : undefined;
}

const models = {};        // name -> {name, stage, params, context_len, step} (GET /api/models)

// max_tokens as asked, but never more than the model can see (the server would refuse it)
function maxTokens(id, model) {
  const asked = number(id);
  return asked === undefined || !models[model] ? asked : Math.min(asked, models[model].context_len);
}

function sampling(model) {
  return {temperature: number("temperature"), top_k: number("top-k"), top_p: number("top-p"),
          max_tokens: maxTokens("max-tokens", model), seed: Math.floor(Math.random() * 2 ** 31)};
}

function fillModels(select, models, chosen) {
  select.replaceChildren();
  for (const m of models) {
    const option = el("option", "", `${m.name} (${m.stage}, ${(m.params / 1e6).toFixed(2)}M, ` +
                                     `context ${m.context_len})`);
    option.value = m.name;
    select.append(option);
  }
  select.value = chosen;
}

// ---- tabs ------------------------------------------------------------------------------

const onShow = {};        // panel id -> what to do each time it is shown

function showPanel(id) {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.setAttribute("aria-selected", String(tab.dataset.panel === id));
  }
  for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== id;
  if (onShow[id]) onShow[id]();
}

// ---- the chat --------------------------------------------------------------------------
// turns: the conversation, [{role, content, model?, note?}]; content as the chat format
// stores it (a string, or for a reply with tool calls a list of parts {type, text}).

const chat = {turns: [], controller: null, dropped: 0, id: null};

const TOOL_NAMES = {python: "calculator", search: "search"};

function messages() {
  return chat.turns.map((t) => ({role: t.role, content: t.content}));
}

function setStatus(id, text, isError) {
  $(id).textContent = text;
  $(id).classList.toggle("error", Boolean(isError));
}

// Build the DOM of an assistant reply from its parts; returns {add(kind), write(text)}
// so a streamed reply grows through the same code that shows a finished one.
function replyView(container) {
  let current = null, tool = null;
  const view = {
    add(kind) {
      if (kind === "python" || kind === "search") {
        tool = el("div", "tool");
        tool.dataset.tool = kind;
        tool.append(el("span", "tool-name", TOOL_NAMES[kind]));
        current = el("code", "tool-input");
        tool.append(current);
        container.append(tool);
      } else if (kind === "output") {
        const output = el("div", "tool-output");
        (tool || container).append(output);
        current = output;
      } else {
        current = el("span", "text");
        container.append(current);
        tool = null;
      }
    },
    write(text) {
      if (!current) view.add("text");
      current.append(text);            // a text node: never parsed as HTML
    },
  };
  return view;
}

function showContent(container, content) {
  const view = replyView(container);
  const parts = typeof content === "string" ? [{type: "text", text: content}] : content;
  for (const part of parts) {
    view.add(part.type);
    view.write(part.text);
  }
}

function renderChat() {
  const box = $("messages");
  box.replaceChildren();
  const lastAssistant = chat.turns.map((t) => t.role).lastIndexOf("assistant");
  chat.turns.forEach((turn, index) => {
    const bubble = el("div", `message ${turn.role}`);
    if (index < 2 * chat.dropped) bubble.classList.add("forgotten");
    const head = el("div", "who", turn.role === "user" ? "you" : `assistant · ${turn.model || "?"}`);
    bubble.append(head);
    const body = el("div", "body");
    if (turn.role === "user") body.textContent = turn.content;
    else showContent(body, turn.content);
    bubble.append(body);
    if (turn.note) bubble.append(el("div", "note", turn.note));
    const actions = el("div", "actions");
    if (turn.role === "user") {
      const edit = el("button", "edit", "Edit");
      edit.type = "button";
      edit.addEventListener("click", () => editTurn(index, bubble));
      actions.append(edit);
    } else if (index === lastAssistant) {
      const again = el("button", "regenerate", "Regenerate");
      again.type = "button";
      again.addEventListener("click", regenerate);
      actions.append(again);
    }
    bubble.append(actions);
    box.append(bubble);
  });
  box.scrollTop = box.scrollHeight;
}

function editTurn(index, bubble) {
  if (chat.controller) return;
  const area = el("textarea", "edit-box");
  area.value = chat.turns[index].content;
  const send = el("button", "", "Send");
  const cancel = el("button", "", "Cancel");
  send.type = cancel.type = "button";
  send.addEventListener("click", () => {
    if (!area.value.trim()) return;
    chat.turns = chat.turns.slice(0, index);
    chat.turns.push({role: "user", content: area.value});
    reply();
  });
  cancel.addEventListener("click", renderChat);
  bubble.querySelector(".body").replaceChildren(area);
  bubble.querySelector(".actions").replaceChildren(send, cancel);
  area.focus();
}

function regenerate() {
  if (chat.controller) return;
  if (chat.turns.length && chat.turns[chat.turns.length - 1].role === "assistant") chat.turns.pop();
  reply();
}

function send(event) {
  event.preventDefault();
  const text = $("input").value;
  if (!text.trim() || chat.controller) return;
  chat.turns.push({role: "user", content: text});
  $("input").value = "";
  reply();
}

// Ask the server for a reply to chat.turns (which end with the user's message) and show it
// as it streams: text, tool calls as they run, the tool's output when it arrives.
async function reply() {
  const model = $("chat-model").value;
  renderChat();
  const bubble = el("div", "message assistant streaming");
  bubble.append(el("div", "who", `assistant · ${model}`));
  const body = el("div", "body");
  bubble.append(body);
  $("messages").append(bubble);
  const view = replyView(body);
  const parts = [{type: "text", text: ""}];
  const turn = {role: "assistant", content: "", model};
  chat.controller = new AbortController();
  $("send").hidden = true;
  $("stop").hidden = false;
  setStatus("chat-status", "thinking…");
  let done = null;
  try {
    await streamEvents("/api/chat", {model, messages: messages(), ...sampling(model)}, chat.controller.signal, (ev) => {
      if (ev.type === "start") {
        chat.dropped = ev.dropped;
        setStatus("chat-status", ev.dropped ? `the context is full: the model no longer sees the oldest ` +
                                 `${ev.dropped} exchange(s) (greyed)` : "");
        for (const [i, node] of [...$("messages").children].entries()) {
          node.classList.toggle("forgotten", i < 2 * ev.dropped);
        }
      } else if (ev.type === "part") {
        parts.push({type: ev.part, text: ""});
        view.add(ev.part);
      } else if (ev.type === "token" && ev.text) {
        parts[parts.length - 1].text += ev.text;
        view.write(ev.text);
        $("messages").scrollTop = $("messages").scrollHeight;
      } else if (ev.type === "done") {
        done = ev;
      } else if (ev.type === "error") {
        throw new Error(ev.error);
      }
    });
    if (!done) throw new Error("the server closed the stream before the reply was done");
    turn.content = done.message.content;
    const cut = {length: " (cut at max tokens)", context: " (cut: the context is full)"}[done.finish_reason] || "";
    turn.note = `${done.tokens} tokens, ${done.tokens_per_second} tokens/s${cut}`;
    chat.turns.push(turn);
  } catch (error) {
    if (error.name === "AbortError") {                // Stop: keep what was written so far
      const kept = parts.filter((p) => p.type !== "text" || p.text);
      turn.content = kept.every((p) => p.type === "text") ? kept.map((p) => p.text).join("") : kept;
      turn.note = "stopped";
      chat.turns.push(turn);
      setStatus("chat-status", "");
    } else {
      const last = chat.turns[chat.turns.length - 1];
      if (last && last.role === "user" && !parts.some((p) => p.text)) {   // nothing came: take it back
        chat.turns.pop();
        if (!$("input").value) $("input").value = last.content;
      }
      setStatus("chat-status", error.message, true);
    }
  } finally {
    chat.controller = null;
    $("send").hidden = false;
    $("stop").hidden = true;
    renderChat();
    rememberChat();
  }
}

function newChat() {
  if (chat.controller) chat.controller.abort();
  chat.turns = [];
  chat.dropped = 0;
  chat.id = null;
  setStatus("chat-status", "");
  renderChat();
  renderHistory();
}

// ---- the history: past conversations, kept in this browser (localStorage) ---------------

const HISTORY_MAX = 50;
let historyKey = "minillm-chats";          // one list per run (set at start)

function loadHistory() {
  try {
    const list = JSON.parse(localStorage.getItem(historyKey) || "[]");
    return Array.isArray(list) ? list.filter((e) => e && typeof e.id === "string" && Array.isArray(e.turns)) : [];
  } catch (error) {
    return [];                             // unreadable: start a new list
  }
}

function saveHistory(list) {
  try {
    localStorage.setItem(historyKey, JSON.stringify(list.slice(0, HISTORY_MAX)));
  } catch (error) {
    setStatus("chat-status", `the history could not be saved: ${error.message}`, true);
  }
}

function rememberChat() {
  if (!chat.turns.length) return;
  if (!chat.id) chat.id = `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
  const first = chat.turns.find((t) => t.role === "user");
  const entry = {id: chat.id, title: first ? String(first.content).slice(0, 80) : "", turns: chat.turns, time: Date.now()};
  saveHistory([entry, ...loadHistory().filter((e) => e.id !== chat.id)]);
  renderHistory();
}

function renderHistory() {
  const box = $("history-list");
  box.replaceChildren();
  for (const entry of loadHistory()) {
    const item = el("li", entry.id === chat.id ? "current" : "");
    const open = el("button", "open", entry.title || "(untitled)");
    open.type = "button";
    open.title = new Date(entry.time).toLocaleString();
    open.addEventListener("click", () => openChat(entry.id));
    const drop = el("button", "drop", "×");
    drop.type = "button";
    drop.title = "forget this conversation";
    drop.addEventListener("click", () => {
      saveHistory(loadHistory().filter((e) => e.id !== entry.id));
      if (chat.id === entry.id) chat.id = null;
      renderHistory();
    });
    item.append(open, drop);
    box.append(item);
  }
}

function openChat(id) {
  if (chat.controller) return;
  const entry = loadHistory().find((e) => e.id === id);
  if (!entry) return;
  chat.id = entry.id;
  chat.turns = entry.turns;
  chat.dropped = 0;
  setStatus("chat-status", "");
  renderChat();
  renderHistory();
}

// ---- the token view --------------------------------------------------------------------

const BREAK_AFTER = new Set(["<|bos|>", "<|user_end|>", "<|assistant_end|>"]);

function showTokens(container, tokens) {
  container.replaceChildren();
  tokens.forEach((t, k) => {
    const span = el("span", "tok" + (k % 2 ? " odd" : ""), t.token);
    if (t.special) span.classList.add("special");
    if (t.mask === 1) span.classList.add("learn");
    span.title = `token ${k}: id ${t.id}` + (t.mask === undefined ? "" : t.mask ? ", supervised" : ", context");
    container.append(span);
    if (t.special && BREAK_AFTER.has(t.token)) container.append(el("br"));
  });
}

async function showConversationTokens() {
  if (!chat.turns.length) {
    $("conv-info").textContent = "Nothing yet: say something in the Chat tab, then come back.";
    $("conv-tokens").replaceChildren();
    return;
  }
  try {
    const data = await getJSON("/api/tokenize", {model: $("chat-model").value, messages: messages()});
    const model = models[$("chat-model").value];
    const gone = chat.dropped ? ` The model's context holds ${model ? model.context_len : "?"} tokens: at the ` +
      `last reply it no longer saw the first ${chat.dropped} exchange(s).` : "";
    $("conv-info").textContent = `${data.count} tokens, ${data.supervised} of them supervised if this ` +
      `conversation were training data (the assistant's replies and tool calls).` + gone;
    showTokens($("conv-tokens"), data.tokens);
  } catch (error) {
    $("conv-info").textContent = error.message;
  }
}

async function showExample() {
  try {
    const data = await getJSON("/api/tokenize", {model: $("chat-model").value, example: number("example") || 0});
    $("example-info").textContent = `kind ${data.kind || "?"}: ${data.count} tokens, ${data.supervised} supervised`;
    showTokens($("example-tokens"), data.tokens);
  } catch (error) {
    $("example-info").textContent = error.message;
    $("example-tokens").replaceChildren();
  }
}

let tokenizeTimer = null;

function tokenizeSoon() {
  clearTimeout(tokenizeTimer);
  tokenizeTimer = setTimeout(async () => {
    const text = $("tok-input").value;
    try {
      const data = await getJSON("/api/tokenize", {model: $("chat-model").value, text});
      $("tok-count").textContent = `${data.count} tokens, ${text.length} characters`;
      showTokens($("tok-output"), data.tokens);
    } catch (error) {
      $("tok-count").textContent = error.message;
    }
  }, 150);
}

// ---- the playground --------------------------------------------------------------------

const play = {controller: null};

function pct(p) {
  return p === null || p === undefined ? "forced" : `${(100 * p).toFixed(p < 0.001 ? 3 : 1)}%`;
}

function showTip(event, token) {
  const tip = $("tip");
  tip.replaceChildren(el("div", "tip-head", `${JSON.stringify(token.token)}  p = ${pct(token.p)}`));
  if (token.top && token.top.length) {
    tip.append(el("div", "muted", "the model's most likely tokens here:"));
    for (const [text, p] of token.top) tip.append(el("div", "tip-row", `${pct(p).padStart(6)}  ${JSON.stringify(text)}`));
  }
  tip.hidden = false;
  tip.style.left = `${Math.min(event.pageX + 12, window.scrollX + window.innerWidth - tip.offsetWidth - 8)}px`;
  tip.style.top = `${event.pageY + 16}px`;
}

function tokenSpan(token, generated) {
  const span = el("span", "tok" + (generated ? " generated" : " prompt"), token.token);
  if (token.special) span.classList.add("special");
  if (generated && token.p !== null) {
    // certain = pale green, unlikely = orange: how surprised the model was by its own sample
    span.style.backgroundColor = `hsl(${Math.round(30 + 90 * token.p)}, 75%, ${Math.round(88 - 10 * (1 - token.p))}%)`;
  }
  span.addEventListener("mousemove", (event) => showTip(event, token));
  span.addEventListener("mouseleave", () => { $("tip").hidden = true; });
  return span;
}

async function generate() {
  if (play.controller) return;
  const out = $("completion");
  out.replaceChildren();
  play.controller = new AbortController();
  $("generate").hidden = true;
  $("play-stop").hidden = false;
  setStatus("play-status", "generating…");
  const body = {model: $("play-model").value, prompt: $("prompt").value, temperature: number("play-temperature"),
                max_tokens: maxTokens("play-max-tokens", $("play-model").value), top: 5, seed: Math.floor(Math.random() * 2 ** 31)};
  let count = 0;
  try {
    await streamEvents("/api/complete", body, play.controller.signal, (ev) => {
      if (ev.type === "start") for (const t of ev.prompt) out.append(tokenSpan(t, false));
      else if (ev.type === "token") { out.append(tokenSpan(ev, true)); count++; }
      else if (ev.type === "done") setStatus("play-status", `${ev.tokens} tokens, ${ev.tokens_per_second} tokens/s (${ev.finish_reason})`);
      else if (ev.type === "error") throw new Error(ev.error);
    });
  } catch (error) {
    setStatus("play-status", error.name === "AbortError" ? `stopped after ${count} tokens` : error.message,
              error.name !== "AbortError");
  } finally {
    play.controller = null;
    $("generate").hidden = false;
    $("play-stop").hidden = true;
  }
}

// ---- the report card -------------------------------------------------------------------

async function showReport() {
  try {
    const data = await getJSON("/api/report");
    if (data.report) {
      $("report-info").textContent = `The report card of run ${data.run} (report.html, written by the speedrun ` +
        `and by \`minillm report\`), then its plots.`;
      if (!$("report-frame").getAttribute("src")) $("report-frame").src = data.report;
      $("report-frame").hidden = false;
    } else {
      $("report-info").textContent = `Run ${data.run} has no report card yet: \`minillm report --run DIR\` writes it.`;
    }
    $("plots").replaceChildren();
    for (const url of data.plots) {
      const figure = el("figure");
      const img = el("img");
      img.src = url;
      img.alt = url.split("/").pop();
      figure.append(img, el("figcaption", "", img.alt));
      $("plots").append(figure);
    }
  } catch (error) {
    $("report-info").textContent = error.message;
  }
}

// ---- start -----------------------------------------------------------------------------

async function start() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => showPanel(tab.dataset.panel));
  }
  $("composer").addEventListener("submit", send);
  $("input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) send(event);
  });
  $("stop").addEventListener("click", () => chat.controller && chat.controller.abort());
  $("new-chat").addEventListener("click", newChat);
  $("chat-model").addEventListener("change", () => {
    if (chat.turns.length) setStatus("chat-status", `now talking to ${$("chat-model").value}; the conversation so far stays`);
  });
  $("example").addEventListener("change", showExample);
  $("tok-input").addEventListener("input", tokenizeSoon);
  $("generate").addEventListener("click", generate);
  $("play-stop").addEventListener("click", () => play.controller && play.controller.abort());
  onShow.tokens = () => { showConversationTokens(); showExample(); tokenizeSoon(); };
  onShow.report = showReport;
  try {
    const info = await getJSON("/api/models");
    $("run").textContent = `run ${info.run}`;
    historyKey = `minillm-chats:${info.run}`;
    renderHistory();
    for (const m of info.models) models[m.name] = m;
    fillModels($("chat-model"), info.models, info.chat_default);
    fillModels($("play-model"), info.models, info.complete_default);
    $("example").max = Math.max(info.examples - 1, 0);
    $("max-tokens").max = $("play-max-tokens").max = info.limits.new_tokens;
    document.body.dataset.ready = "true";
  } catch (error) {
    $("fatal").textContent = `cannot reach the server: ${error.message}`;
    $("fatal").hidden = false;
  }
}

document.addEventListener("DOMContentLoaded", start);
