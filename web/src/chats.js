// What the browser shows, kept apart from the screen: the chats and their
// messages keyed by inbox seq, so a message that comes twice (live and by
// sync, history and sync) is shown once and always in seq order.

const RANK = { sending: 0, sent: 1, delivered: 2, read: 3 };

export class ChatStore {
  constructor(me) {
    this.me = me;
    this.chats = new Map(); // key ('bob', '#team') -> chat
    this.bySeq = new Map(); // my inbox seq -> message
    this.byId = new Map(); // my own message id -> message
    this.earlyAcks = new Map(); // id -> acks that came before the echo
  }

  /** The chat of an envelope: '#group', or the peer of a direct message. */
  keyOf(env) {
    if (env.group) return '#' + env.group;
    return env.from === this.me ? env.to : env.from;
  }

  chat(key) {
    let c = this.chats.get(key);
    if (!c) {
      const group = key.startsWith('#') ? key.slice(1) : null;
      c = {
        key, group, peer: group ? null : key, title: group || key,
        unread: 0, lastSeq: 0, last: null, presence: null,
        messages: new Map(), pending: new Map(),
        historyLoaded: false, historyComplete: false, pruned: false,
        typing: new Map(), // who -> until (ms)
      };
      this.chats.set(key, c);
    }
    return c;
  }

  /** An envelope with a seq: returns {chat, msg, isNew}. */
  add(env) {
    const chat = this.chat(this.keyOf(env));
    const known = chat.messages.get(env.seq);
    if (known) return { chat, msg: known, isNew: false };
    const mine = env.from === this.me;
    const msg = { env, seq: env.seq, id: env.id, mine, status: mine ? 'sent' : null, reason: null };
    if (mine && chat.pending.has(env.id)) {
      const p = chat.pending.get(env.id);
      chat.pending.delete(env.id);
      if (RANK[p.status] > RANK.sent) msg.status = p.status;
    }
    chat.messages.set(env.seq, msg);
    this.bySeq.set(env.seq, msg);
    if (mine && env.id) {
      this.byId.set(env.id, msg);
      for (const a of this.earlyAcks.get(env.id) || []) this.ack(a);
      this.earlyAcks.delete(env.id);
    }
    if (env.seq > chat.lastSeq) {
      chat.lastSeq = env.seq;
      chat.last = env;
    }
    return { chat, msg, isNew: true };
  }

  /** My message, shown at once, until its echo confirms it. */
  addPending(key, env) {
    const chat = this.chat(key);
    const msg = { env: { ...env, from: this.me, ts: Date.now() }, seq: null, id: env.id, mine: true,
      status: 'sending', reason: null };
    chat.pending.set(env.id, msg);
    this.byId.set(env.id, msg);
    return { chat, msg };
  }

  /** An ack on in/ack: returns the message it changed, or null. */
  ack(a) {
    const msg = (a.seq !== undefined && this.bySeq.get(a.seq)) || (a.id && this.byId.get(a.id));
    if (!msg) {
      if (a.id && a.status !== 'rejected') {
        this.earlyAcks.set(a.id, [...(this.earlyAcks.get(a.id) || []), a]);
      }
      return null;
    }
    if (a.status === 'rejected' || a.status === 'refused') {
      if (a.status === 'rejected') msg.status = 'failed';
      msg.reason = a.reason || a.code;
      return msg;
    }
    if (RANK[a.status] !== undefined && (msg.status === null || msg.status === 'failed' ||
        RANK[a.status] > RANK[msg.status])) {
      msg.status = a.status;
    }
    return msg;
  }

  /** Messages in the order they are shown: by seq, then the unconfirmed. */
  ordered(chat) {
    const stored = [...chat.messages.values()].sort((a, b) => a.seq - b.seq);
    return stored.concat([...chat.pending.values()]);
  }

  oldestSeq(chat) {
    let min = null;
    for (const s of chat.messages.keys()) if (min === null || s < min) min = s;
    return min;
  }

  /** Chats, the most recent first. */
  list() {
    const ts = (c) => (c.last && c.last.ts) || 0;
    return [...this.chats.values()].sort((a, b) => ts(b) - ts(a) || a.key.localeCompare(b.key));
  }
}
