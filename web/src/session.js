// The connection to the broker and the protocol of docs/protocol.md that
// does not depend on the screen: topics, control requests correlated by
// `req`, presence of this device (status with an epoch, the will), and the
// inbox seq state with sync after every (re)connect.
import mqtt from 'mqtt';
import { SeqState } from './seq.js';
import { newId } from './util.js';

const REQUEST_TIMEOUT_MS = 10000;
const SYNC_PAGE = 100;

/** Why a login failed, for the login form. */
export class LoginError extends Error {
  constructor(message, code) {
    super(message);
    this.code = code;
  }
}

/** A failed control request: the gateway's `code` and `reason`. */
export class RequestError extends Error {
  constructor(resp) {
    super(resp.reason || resp.code || 'request failed');
    this.code = resp.code;
  }
}

export class Session {
  /**
   * opts: url, user, password, device, root ('im'), storage (localStorage),
   * keyPayload() (this device's out/key, or none), and callbacks: onMessage(env, live), onAck(ack), onPresence(p),
   * onLink(state, detail), onResynced(), onGatewayStatus(s).
   */
  constructor(opts) {
    this.opts = opts;
    this.user = opts.user;
    this.device = opts.device;
    this.root = opts.root || 'im';
    this.pending = new Map(); // req -> {resolve, reject, timer}
    this.seq = new SeqState(opts.storage, `mqim.seq.${this.root}.${this.user}.${this.device}`);
    this.client = null;
    this.connectedOnce = false;
    this.syncing = null;
  }

  topic(suffix) {
    return `${this.root}/u/${this.user}/${suffix}`;
  }

  // The status epoch grows with every connect (a will of an older
  // connection that arrives late is then ignored by the gateway).
  nextEpoch() {
    const key = `mqim.epoch.${this.user}.${this.device}`;
    const epoch = Math.max(Date.now(), Number(this.opts.storage.getItem(key) || 0) + 1);
    this.opts.storage.setItem(key, String(epoch));
    return epoch;
  }

  statusPayload(state) {
    return JSON.stringify({ state, epoch: this.epoch });
  }

  /** Resolves after the first CONNACK; rejects with a LoginError when refused. */
  connect() {
    this.epoch = this.nextEpoch();
    const will = { topic: this.topic(`out/status/${this.device}`), payload: '', qos: 1, retain: true };
    will.payload = this.statusPayload('offline');
    const client = mqtt.connect(this.opts.url, {
      clientId: `${this.user}.${this.device}`,
      username: this.user,
      password: this.opts.password,
      protocolVersion: 4,
      clean: true, // what was missed while away comes by sync, not a broker queue
      keepalive: 30,
      reconnectPeriod: 1000,
      connectTimeout: 5000,
      resubscribe: false, // subscribed again in on('connect'), before the sync
      will,
    });
    this.client = client;
    client.on('reconnect', () => {
      this.epoch = this.nextEpoch();
      client.options.will.payload = this.statusPayload('offline');
      this.opts.onLink('connecting');
    });
    client.on('close', () => {
      if (this.connectedOnce) this.opts.onLink('offline');
      this.failPending('the connection was lost');
    });
    client.on('message', (topic, payload) => this.dispatch(topic, payload));
    return new Promise((resolve, reject) => {
      client.on('error', (err) => {
        if (this.connectedOnce) {
          this.opts.onLink('offline', err.message);
          return;
        }
        // CONNACK 4 (bad user name or password) and 5 (not authorized):
        // Mosquitto refuses a wrong password with 5.
        const code = err.code;
        client.end(true);
        if (code === 4 || code === 5) reject(new LoginError('Wrong user name or password.', code));
        else reject(new LoginError(`Could not connect: ${err.message}`, code));
      });
      client.on('offline', () => {
        if (!this.connectedOnce) {
          client.end(true);
          reject(new LoginError(`Could not reach the broker at ${this.opts.url}.`, 'unreachable'));
        }
      });
      client.on('connect', () => {
        const first = !this.connectedOnce;
        this.connectedOnce = true;
        this.onConnected().catch((e) => this.opts.onLink('online', e.message));
        if (first) resolve();
      });
    });
  }

  async onConnected() {
    const subs = {};
    subs[this.topic('in/#')] = { qos: 1 };
    subs[`${this.root}/presence/+`] = { qos: 1 };
    subs[`${this.root}/gateway/status`] = { qos: 1 };
    await this.client.subscribeAsync(subs);
    this.client.publish(this.topic(`out/status/${this.device}`), this.statusPayload('online'),
      { qos: 1, retain: true });
    // This device's E2E key (docs/e2e.md), retained; the same key again
    // changes nothing at the gateway.
    if (this.opts.keyPayload) this.client.publish(this.topic('out/key'), this.opts.keyPayload(), { qos: 1, retain: true });
    this.opts.onLink('online');
    await this.sync();
    this.opts.onResynced();
  }

  end() {
    if (!this.client) return;
    const client = this.client;
    this.client = null;
    // An orderly goodbye: offline now, not when the will fires.
    client.publish(this.topic(`out/status/${this.device}`), this.statusPayload('offline'),
      { qos: 1, retain: true }, () => client.end());
  }

  dispatch(topic, payload) {
    let doc;
    const text = new TextDecoder().decode(payload);
    try {
      doc = text.startsWith('{') ? JSON.parse(text) : null;
    } catch {
      doc = null;
    }
    if (!doc) return; // the gateway publishes JSON only; anything else is not ours
    if (topic === this.topic('in/msg')) {
      if (typeof doc.seq === 'number') this.seq.received(doc.seq);
      this.opts.onMessage(doc);
    } else if (topic === this.topic('in/ack')) {
      this.opts.onAck(doc);
    } else if (topic.startsWith(this.topic('in/res'))) {
      const p = this.pending.get(doc.req);
      if (!p) return; // an answer we no longer wait for (a timeout, an old page)
      this.pending.delete(doc.req);
      clearTimeout(p.timer);
      if (doc.ok === false) p.reject(new RequestError(doc));
      else p.resolve(doc);
    } else if (topic.startsWith(`${this.root}/presence/`)) {
      this.opts.onPresence(doc);
    } else if (topic === `${this.root}/gateway/status`) {
      this.opts.onGatewayStatus(doc);
    }
  }

  failPending(why) {
    for (const [req, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new Error(why));
      this.pending.delete(req);
    }
  }

  /** A control request (out/ctl; file ops on out/file): resolves with the answer. */
  request(body, where = 'ctl') {
    const req = newId('r');
    return new Promise((resolve, reject) => {
      if (!this.client || !this.client.connected) {
        reject(new Error('not connected'));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(req);
        reject(new Error(`no answer to ${body.op} within ${REQUEST_TIMEOUT_MS / 1000} s`));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(req, { resolve, reject, timer });
      this.client.publish(this.topic(`out/${where}`), JSON.stringify({ ...body, req }), { qos: 1 });
    });
  }

  /** A stored message (QoS 1) or an ephemeral signal (QoS 0) to a chat. */
  send(chat, envelope, qos = 1) {
    const where = chat.group ? `out/group/${chat.group}` : `out/dm/${chat.peer}`;
    // A typing signal is worth nothing later; a message made while offline
    // waits in MQTT.js's queue for the reconnect (the gateway drops a
    // repeat by id).
    if (!this.client || (qos === 0 && !this.client.connected)) return;
    this.client.publish(this.topic(where), JSON.stringify(envelope), { qos });
  }

  receipt(body) {
    if (this.client) this.client.publish(this.topic('out/receipt'), JSON.stringify(body), { qos: 1 });
  }

  /**
   * Sync after the (re)connect (docs/protocol.md, "sync", "Store epochs"):
   * the inbox entries after our last seq, page by page; a new store epoch
   * moves `last` back to the seq both histories share. A browser that never
   * synced starts from the chats' newest seq: older messages come by
   * history when a chat is opened.
   */
  async sync() {
    if (this.syncing) return this.syncing;
    this.syncing = (async () => {
      try {
        if (this.seq.last === null) {
          const chats = await this.request({ op: 'chats' });
          let newest = 0;
          for (const c of chats.chats || []) newest = Math.max(newest, c.last_seq || 0);
          this.seq.through(newest);
        }
        for (let pages = 0; pages < 1000; pages++) {
          const ask = { op: 'sync', after: this.seq.last, limit: SYNC_PAGE };
          if (this.seq.epoch !== null) ask.store_epoch = this.seq.epoch;
          const r = await this.request(ask);
          if (r.epoch_seq !== undefined && r.store_epoch !== this.seq.epoch) {
            this.seq.last = Math.min(this.seq.last, r.epoch_seq);
            this.seq.above.clear();
            this.seq.epoch = r.store_epoch;
            this.seq.save();
            continue;
          }
          if (r.store_epoch !== undefined) this.seq.epoch = r.store_epoch;
          if (r.pruned && r.first_seq) this.seq.through(r.first_seq - 1);
          this.seq.through(r.last);
          if (r.complete) break;
        }
      } finally {
        this.syncing = null;
      }
    })();
    return this.syncing;
  }
}
