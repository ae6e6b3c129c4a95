// The mqim web client: the screen. Protocol and state live in session.js,
// chats.js and files.js; docs/web.md maps each feature to docs/protocol.md.
import { ChatStore } from './chats.js';
import { DeviceKey } from './e2e.js';
import { downloadFile, uploadFile } from './files.js';
import { LoginError, Session } from './session.js';
import { formatSize, formatTime, newId } from './util.js';

const TYPING_REPEAT_MS = 3000; // senders repeat "typing" every 3 s ...
const TYPING_SHOWN_MS = 5000; // ... and it means "for the next 5 s"
const HISTORY_PAGE = 30;
const MARKS = { sending: '…', sent: '✓', delivered: '✓✓', read: '✓✓', failed: '!' };

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
};

const app = {
  session: null,
  store: null,
  open: null, // the open chat
  key: null, // this browser's E2E device key (null: WebCrypto without X25519)
  presence: new Map(), // user -> aggregate presence
  delivered: new Set(), // seqs this page sent a delivered receipt for
  deliverQueue: [],
  lastTypingSent: 0,
};

// The broker: the page's own WebSocket listener (Mosquitto serves both), or
// ?broker=ws://host:port/ when the page is served elsewhere.
function brokerUrl() {
  const given = new URLSearchParams(location.search).get('broker');
  if (given) return given;
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/mqtt`;
}

function deviceName(user) {
  const key = `mqim.device.${user}`;
  let d = localStorage.getItem(key);
  if (!d) {
    d = newId('web').slice(0, 12);
    localStorage.setItem(key, d);
  }
  return d;
}

function announce(text) {
  $('announce').textContent = text;
}

function preview(env) {
  if (!env) return '';
  if (env.enc) return '[encrypted]'; // the list never shows what E2E protects
  if (env.type === 'file') return 'File: ' + ((env.file && env.file.name) || '');
  return env.body || '';
}

function presenceText(p) {
  if (!p) return '';
  if (p.state === 'online') return 'online';
  if (p.state === 'unknown') return 'unknown user';
  return p.last_seen ? `last seen ${formatTime(p.last_seen)}` : p.state;
}

// ---------------------------------------------------------------- login

async function login(user, password) {
  $('login-error').textContent = '';
  $('login-submit').disabled = true;
  performance.mark('mqim-login'); // bench/web_bench.py: login to chat list
  const store = new ChatStore(user);
  const device = deviceName(user);
  try {
    app.key = await DeviceKey.load(localStorage, user, device);
  } catch (e) {
    app.key = null; // encrypted messages are then shown as such, unopened
    console.warn(`no E2E key: ${e.message}`);
  }
  const session = new Session({
    url: brokerUrl(), user, password, device, storage: localStorage,
    keyPayload: app.key ? () => app.key.payload() : null,
    onMessage: onMessage, onAck: onAck, onPresence: onPresence, onLink: onLink,
    onResynced: () => refreshChats(), onGatewayStatus: () => {},
  });
  app.store = store;
  app.session = session;
  try {
    await session.connect();
  } catch (e) {
    $('login-error').textContent = e instanceof LoginError ? e.message : `Login failed: ${e.message}`;
    $('login-submit').disabled = false;
    app.session = null;
    return;
  }
  $('login-submit').disabled = false;
  $('login-view').hidden = true;
  $('app-view').hidden = false;
  $('me').replaceChildren(user, el('span', { class: 'device', text: ` (${session.device})` }));
  document.title = `mqim — ${user}`;
  $('new-chat-user').focus();
}

function onLink(state, detail) {
  const text = { online: 'connected', connecting: 'reconnecting…', offline: 'offline' }[state] || state;
  $('link').textContent = detail ? `${text}: ${detail}` : text;
  $('link').dataset.state = state;
}

// ---------------------------------------------------------------- chat list

async function refreshChats() {
  try {
    const r = await app.session.request({ op: 'chats' });
    for (const c of r.chats || []) {
      const chat = app.store.chat(c.group ? '#' + c.group : c.chat);
      chat.unread = c.unread;
      if (c.last_seq >= chat.lastSeq) {
        chat.lastSeq = c.last_seq;
        chat.last = c.last;
      }
      if (c.presence && !app.presence.has(chat.peer)) chat.presence = { state: c.presence };
    }
    $('chats-status').textContent = '';
    if (!document.body.dataset.chatsLoaded) performance.mark('mqim-chats');
    document.body.dataset.chatsLoaded = 'true';
  } catch (e) {
    $('chats-status').textContent = `Chats: ${e.message}`;
  }
  renderChatList();
  if (app.open && app.open.historyLoaded) markRead(app.open);
}

// The list is updated in place (one button per chat, moved only when the
// order changed), so keyboard focus and a click in progress survive the
// presence and message updates that re-render it.
function renderChatList() {
  const list = $('chat-list');
  const chats = app.store.list();
  const items = new Map([...list.children].map((li) => [li.dataset.chat, li]));
  chats.forEach((c, i) => {
    let li = items.get(c.key);
    if (!li) {
      li = el('li', { 'data-chat': c.key },
        el('button', { type: 'button', 'data-chat': c.key, onclick: () => openChat(c.key) }));
    }
    const p = c.peer ? (app.presence.get(c.peer) || c.presence) : null;
    const last = c.last;
    const button = li.firstChild;
    button.setAttribute('aria-current', app.open === c ? 'true' : 'false');
    button.replaceChildren(
      el('span', { class: 'chat-name' },
        c.peer ? el('span', { class: 'dot ' + ((p && p.state) || ''), 'aria-hidden': 'true' }) : '',
        c.group ? '#' + c.group : c.peer,
        c.peer && p ? el('span', { class: 'sr-only', text: ` (${presenceText(p)})` }) : ''),
      el('time', { class: 'chat-time', text: formatTime(last && last.ts) }),
      el('span', { class: 'chat-last', text: (last && last.from === app.store.me ? 'You: ' : '') + preview(last) }),
      el('span', { class: 'unread', 'aria-label': c.unread ? `${c.unread} unread` : '',
        text: c.unread ? String(c.unread) : '' }));
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null);
  });
}

// ---------------------------------------------------------------- conversation

async function openChat(key) {
  const chat = app.store.chat(key);
  app.open = chat;
  document.body.classList.add('in-chat');
  $('conv-title').textContent = chat.group ? '#' + chat.group : chat.peer;
  $('group-tools').hidden = !chat.group;
  $('composer').hidden = false;
  $('conv-status').textContent = '';
  $('typing').textContent = '';
  renderPresence();
  renderMessages();
  renderChatList();
  if (!chat.historyLoaded) await loadHistory(chat, false);
  markRead(chat);
  $('composer-text').focus();
}

function chatRef(chat) {
  return chat.group ? { group: chat.group } : { with: chat.peer };
}

async function loadHistory(chat, older) {
  const ask = { op: 'history', ...chatRef(chat), limit: HISTORY_PAGE };
  const oldest = app.store.oldestSeq(chat);
  if (older && oldest !== null) ask.before = oldest;
  try {
    const r = await app.session.request(ask);
    for (const env of r.messages || []) {
      const added = app.store.add(env);
      if (added.isNew && env.enc) openEncrypted(chat, added.msg, false);
    }
    chat.historyLoaded = true;
    chat.historyComplete = !!r.complete;
    chat.pruned = !!r.pruned;
  } catch (e) {
    if (app.open === chat) $('conv-status').textContent = `History: ${e.message}`;
  }
  if (app.open === chat) renderMessages(older ? 'keep' : 'bottom');
}

function renderPresence() {
  const chat = app.open;
  if (!chat) return;
  $('conv-presence').textContent = chat.peer ? presenceText(app.presence.get(chat.peer) || chat.presence) : '';
}

function markText(msg) {
  return msg.status === 'failed' ? `not sent: ${msg.reason || ''}` : msg.status;
}

function renderMessage(chat, msg) {
  const env = msg.env;
  const li = el('li', { class: 'msg' + (msg.mine ? ' mine' : ''), 'data-id': env.id || '' });
  if (msg.seq !== null) li.dataset.seq = String(msg.seq);
  if (env.type && env.type.startsWith('group.')) {
    li.className = 'msg event';
    const what = { 'group.create': 'created the group with', 'group.add': 'added', 'group.remove': 'removed',
      'group.leave': 'left:', 'group.rename': 'renamed the group to' }[env.type] || env.type;
    li.textContent = `${env.from} ${what} ${env.body || ''}`;
    return li;
  }
  if (chat.group || !msg.mine) li.append(el('div', { class: 'from', text: msg.mine ? 'You' : env.from }));
  if (env.enc) {
    li.append(...renderEncrypted(msg));
  } else if (env.type === 'file' && env.file) {
    li.append(renderFile(env));
  } else {
    li.append(el('p', { class: 'body', text: env.body || '' }));
  }
  const meta = el('div', { class: 'meta' }, el('time', { text: formatTime(env.ts) }));
  if (msg.mine) {
    meta.append(el('span', { class: 'mark', 'data-status': msg.status, title: markText(msg),
      'aria-label': markText(msg), text: MARKS[msg.status] || '' }));
    li.dataset.status = msg.status;
    if (chat.group && msg.seq !== null) {
      meta.append(el('button', { type: 'button', class: 'link', text: 'Status',
        'aria-label': 'Who got this message', onclick: () => groupStatus(li, msg) }));
    }
  }
  li.append(meta);
  return li;
}

function renderEncrypted(msg) {
  const e = msg.e2e;
  if (e && e.text !== undefined) {
    const parts = [el('p', { class: 'body', text: e.text }),
      el('span', { class: 'e2e', text: `end-to-end encrypted, from ${msg.env.from}/${e.device}` })];
    if (e.keyChanged) {
      parts.push(el('span', { class: 'verify bad', text: `The key of ${msg.env.from}/${e.device} changed: compare fingerprints` }));
    }
    return parts;
  }
  let why = 'this browser has no key to open it';
  if (e && e.error) why = `it does not open here (${e.error})`;
  else if (app.key && !e) why = 'opening…';
  return [el('p', { class: 'body enc', text: `End-to-end encrypted message: ${why}` })];
}

// An encrypted message is opened once, when it is first stored (live, by
// sync or by history); a live one is then receipted delivered, or refused
// with the reason (docs/e2e.md), so the sender is never told "delivered"
// for what this device could not show.
async function openEncrypted(chat, msg, receipt) {
  if (!app.key || msg.mine && msg.env.device === app.session.device) return;
  try {
    msg.e2e = await app.key.open(msg.env);
    if (receipt) deliver(msg.seq);
  } catch (e) {
    msg.e2e = { error: e.code || e.message };
    if (receipt && e.code) app.session.receipt({ status: 'refused', seqs: [msg.seq], code: e.code, device: app.session.device });
  }
  updateMessage(chat, msg);
  if (chat.last === msg.env) renderChatList();
}

function renderMessages(scroll = 'bottom') {
  const chat = app.open;
  const box = $('messages');
  const fromBottom = box.scrollHeight - box.scrollTop;
  box.replaceChildren(...app.store.ordered(chat).map((m) => renderMessage(chat, m)));
  $('older').hidden = !chat.historyLoaded || chat.historyComplete;
  if (scroll === 'bottom') box.scrollTop = box.scrollHeight;
  else box.scrollTop = box.scrollHeight - fromBottom;
}

// One message changed (a mark): re-render it alone, keeping focus and scroll.
function updateMessage(chat, msg) {
  if (app.open !== chat) return;
  const sel = msg.seq !== null ? `li[data-seq="${msg.seq}"]` : `li[data-id="${CSS.escape(msg.id)}"]`;
  const old = $('messages').querySelector(sel);
  if (old) old.replaceWith(renderMessage(chat, msg));
  else renderMessages();
}

async function groupStatus(li, msg) {
  try {
    const r = await app.session.request({ op: 'msg_status', seq: msg.seq });
    const list = el('ul', { class: 'gstatus' });
    for (const m of r.members || []) list.append(el('li', { text: `${m.user}: ${m.status}` }));
    const old = li.querySelector('.gstatus');
    if (old) old.replaceWith(list);
    else li.append(list);
  } catch (e) {
    $('conv-status').textContent = `Status: ${e.message}`;
  }
}

// ---------------------------------------------------------------- files

function renderFile(env) {
  const f = env.file;
  const box = el('div', { class: 'file' },
    el('span', { text: `File: ${f.name} (${formatSize(f.size)})` }));
  const verify = el('span', { class: 'verify', role: 'status' });
  const bar = el('progress', { max: String(f.size || 1), value: '0', hidden: '', 'aria-label': `Download of ${f.name}` });
  const button = el('button', { type: 'button', text: 'Download', 'aria-label': `Download ${f.name}` });
  button.addEventListener('click', async () => {
    button.disabled = true;
    bar.hidden = false;
    try {
      const r = await downloadFile(app.session, f, (n) => { bar.value = n; });
      box.dataset.sha256 = r.sha256;
      if (r.ok) {
        verify.className = 'verify ok';
        verify.textContent = 'SHA-256 verified';
        const url = URL.createObjectURL(new Blob([r.bytes], { type: f.mime || 'application/octet-stream' }));
        box.append(el('a', { href: url, download: f.name, text: `Save ${f.name}` }));
      } else {
        verify.className = 'verify bad';
        verify.textContent = 'Integrity check failed: the SHA-256 does not match';
      }
      box.dataset.verified = String(r.ok);
    } catch (e) {
      verify.className = 'verify bad';
      verify.textContent = `Download failed: ${e.message}`;
      button.disabled = false;
    }
  });
  box.append(button, bar, verify);
  return box;
}

async function sendFile(file) {
  const chat = app.open;
  if (!chat || !file) return;
  const bar = el('progress', { max: String(file.size || 1), value: '0', 'aria-label': `Upload of ${file.name}` });
  const row = el('div', { class: 'upload' }, el('span', { text: `Uploading ${file.name}` }), bar);
  $('transfers').append(row);
  try {
    const up = await uploadFile(app.session, file, (n) => { bar.value = n; });
    row.remove();
    sendEnvelope(chat, { id: newId(), type: 'file', file: { id: up.id }, body: file.name },
      { name: file.name, size: up.size, sha256: up.sha256, mime: file.type });
  } catch (e) {
    row.replaceChildren(el('span', { class: 'verify bad', text: `Upload of ${file.name} failed: ${e.message}` }));
  }
}

// ---------------------------------------------------------------- sending

function sendEnvelope(chat, envelope, shownFile) {
  envelope.device = app.session.device; // which of my devices: shown as alice/web… by others
  const shown = { ...envelope, ...(chat.group ? { group: chat.group } : { to: chat.peer }) };
  if (shownFile) shown.file = { id: envelope.file.id, ...shownFile };
  app.store.addPending(chat.key, shown);
  app.session.send(chat, envelope, 1);
  renderMessages();
}

function sendText() {
  const chat = app.open;
  const text = $('composer-text').value;
  if (!chat || !text.trim()) return;
  $('composer-text').value = '';
  app.lastTypingSent = 0;
  sendEnvelope(chat, { id: newId(), type: 'text', body: text });
}

function typed() {
  const chat = app.open;
  const now = Date.now();
  if (!chat || now - app.lastTypingSent < TYPING_REPEAT_MS || !$('composer-text').value) return;
  app.lastTypingSent = now;
  app.session.send(chat, { type: 'typing' }, 0);
}

// ---------------------------------------------------------------- receiving

function onMessage(env) {
  const store = app.store;
  if (typeof env.seq !== 'number') {
    onSignal(env);
    return;
  }
  if (!env.id && !env.from) return; // a tombstone: counted (session.js), never shown
  const { chat, msg, isNew } = store.add(env);
  if (!isNew) return;
  if (chat.typing.delete(env.from)) renderTyping();
  const open = app.open === chat;
  if (env.enc) openEncrypted(chat, msg, !msg.mine);
  if (!msg.mine) {
    if (!(env.type || '').startsWith('group.') && !env.enc) deliver(env.seq);
    if (!open || document.hidden) chat.unread += 1;
    if (!open) announce(`New message from ${env.from}${chat.group ? ' in #' + chat.group : ''}: ${preview(env)}`);
  }
  if (open) {
    renderMessages();
    if (!msg.mine && !document.hidden) markRead(chat);
  }
  renderChatList();
}

// Ephemeral: typing, and read events of my own devices.
function onSignal(env) {
  if (env.type === 'typing' && env.from && env.from !== app.store.me) {
    const chat = app.store.chat(env.group ? '#' + env.group : env.from);
    chat.typing.set(env.from, Date.now() + TYPING_SHOWN_MS);
    renderTyping();
    setTimeout(renderTyping, TYPING_SHOWN_MS + 50);
  } else if (env.type === 'read' && env.from === app.store.me) {
    const chat = app.store.chat(env.group ? '#' + env.group : env.to);
    if (env.upto >= chat.lastSeq) chat.unread = 0;
    renderChatList();
  }
}

function renderTyping() {
  const chat = app.open;
  if (!chat) return;
  const now = Date.now();
  const who = [...chat.typing].filter(([, until]) => until > now).map(([u]) => u);
  $('typing').textContent = who.length ? `${who.join(', ')} ${who.length > 1 ? 'are' : 'is'} typing…` : '';
}

// Delivered receipts, a few seqs per publish.
function deliver(seq) {
  if (app.delivered.has(seq)) return;
  app.delivered.add(seq);
  app.deliverQueue.push(seq);
  if (app.deliverQueue.length === 1) {
    setTimeout(() => {
      const seqs = app.deliverQueue.splice(0, 256);
      app.session.receipt({ status: 'delivered', seqs, device: app.session.device });
    }, 20);
  }
}

function markRead(chat) {
  let upto = 0;
  for (const m of chat.messages.values()) if (!m.mine && m.seq > upto) upto = m.seq;
  if (!upto || (chat.unread === 0 && chat.readSent >= upto)) return;
  chat.readSent = upto;
  app.session.receipt({ status: 'read', ...(chat.group ? { group: chat.group } : { chat: chat.peer }), upto });
  chat.unread = 0;
  renderChatList();
}

function onAck(a) {
  const msg = app.store.ack(a);
  if (a.status === 'rejected' && !msg) {
    $('conv-status').textContent = `Rejected: ${a.reason || a.code}`;
    return;
  }
  if (!msg) return;
  const chat = app.store.chat(app.store.keyOf(msg.env));
  updateMessage(chat, msg);
}

function onPresence(p) {
  if (!p.user) return;
  app.presence.set(p.user, p);
  renderPresence();
  renderChatList();
}

// ---------------------------------------------------------------- groups

async function groupRequest(body, done) {
  try {
    const r = await app.session.request(body);
    if (done) done(r);
  } catch (e) {
    $(app.open ? 'conv-status' : 'chats-status').textContent = `${body.op}: ${e.message}`;
  }
}

function wire() {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    login($('login-user').value.trim(), $('login-password').value);
  });
  $('logout').addEventListener('click', () => {
    app.session.end();
    location.reload();
  });
  $('new-chat-form').addEventListener('submit', (e) => {
    e.preventDefault();
    openChat($('new-chat-user').value.trim());
    $('new-chat-user').value = '';
  });
  $('new-group-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const group = $('new-group-name').value.trim();
    const members = $('new-group-members').value.split(',').map((s) => s.trim()).filter(Boolean);
    groupRequest({ op: 'group_create', group, members }, () => {
      $('new-group-form').reset();
      $('new-group').open = false;
      openChat('#' + group);
    });
  });
  $('group-add-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const user = $('group-add-user').value.trim();
    groupRequest({ op: 'group_add', group: app.open.group, users: [user] }, () => $('group-add-form').reset());
  });
  $('group-leave').addEventListener('click', () => {
    const chat = app.open;
    if (!confirm(`Leave #${chat.group}?`)) return;
    groupRequest({ op: 'group_leave', group: chat.group });
  });
  $('back').addEventListener('click', () => {
    document.body.classList.remove('in-chat');
    app.open = null;
    renderChatList();
  });
  $('older').addEventListener('click', () => loadHistory(app.open, true));
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    sendText();
  });
  $('composer-text').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) { // Shift+Enter: a new line
      e.preventDefault();
      sendText();
    }
  });
  $('composer-text').addEventListener('input', typed);
  $('attach').addEventListener('change', (e) => {
    const file = e.target.files[0];
    e.target.value = '';
    sendFile(file);
  });
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden && app.open) markRead(app.open);
  });
  $('login-user').focus();
}

wire();
