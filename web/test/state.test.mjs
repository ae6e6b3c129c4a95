// Unit tests of the web client's state, without a browser (node --test;
// ctest web.state): what keeps a message from showing twice or out of
// order, and what sync asks for after a reconnect.
import assert from 'node:assert/strict';
import test from 'node:test';
import { ChatStore } from '../src/chats.js';
import { SeqState } from '../src/seq.js';

class MemoryStorage {
  constructor() { this.m = new Map(); }
  getItem(k) { return this.m.has(k) ? this.m.get(k) : null; }
  setItem(k, v) { this.m.set(k, String(v)); }
}

const msg = (seq, from, body, extra = {}) => ({ id: `m${seq}`, seq, from, to: from === 'alice' ? 'bob' : 'alice',
  ts: 1000 + seq, type: 'text', body, ...extra });

test('a message that comes twice (live, then by sync or history) is shown once, in seq order', () => {
  const s = new ChatStore('alice');
  for (const m of [msg(5, 'bob', 'e'), msg(3, 'bob', 'c'), msg(5, 'bob', 'e'), msg(4, 'alice', 'd'),
    msg(3, 'bob', 'c')]) {
    s.add(m);
  }
  const shown = s.ordered(s.chat('bob')).map((m) => m.seq);
  assert.deepEqual(shown, [3, 4, 5]);
  assert.equal(s.add(msg(4, 'alice', 'd')).isNew, false);
  assert.equal(s.chat('bob').last.seq, 5);
});

test('my message is pending until its echo, which takes its place (not a second copy)', () => {
  const s = new ChatStore('alice');
  s.addPending('bob', { id: 'x1', to: 'bob', body: 'hi' });
  assert.equal(s.ordered(s.chat('bob')).length, 1);
  assert.equal(s.ordered(s.chat('bob'))[0].status, 'sending');
  s.add({ id: 'x1', seq: 9, from: 'alice', to: 'bob', ts: 5, body: 'hi' });
  const shown = s.ordered(s.chat('bob'));
  assert.deepEqual(shown.map((m) => [m.seq, m.status]), [[9, 'sent']]);
});

test('marks only move forward; an ack that overtakes the echo waits for it', () => {
  const s = new ChatStore('alice');
  s.addPending('bob', { id: 'x2', to: 'bob', body: 'hi' });
  assert.equal(s.ack({ status: 'delivered', id: 'x3', seq: 12 }), null); // not known yet
  s.add({ id: 'x3', seq: 12, from: 'alice', to: 'bob', ts: 5, body: 'yo' });
  assert.equal(s.byId.get('x3').status, 'delivered');
  s.ack({ status: 'read', id: 'x3', seq: 12 });
  s.ack({ status: 'delivered', id: 'x3', seq: 12 }); // a late delivered from another device
  assert.equal(s.byId.get('x3').status, 'read');
  s.ack({ status: 'rejected', id: 'x2', code: 'unknown_peer', reason: 'no such user' });
  assert.equal(s.byId.get('x2').status, 'failed');
});

test('group messages go to the group chat, direct ones to the peer', () => {
  const s = new ChatStore('alice');
  s.add({ id: 'g1', seq: 1, from: 'bob', group: 'crew', ts: 1, body: 'x' });
  s.add({ id: 'g2', seq: 2, from: 'alice', group: 'crew', ts: 2, body: 'y' });
  s.add({ id: 'd1', seq: 3, from: 'alice', to: 'carol', ts: 3, body: 'z' });
  assert.deepEqual(s.list().map((c) => c.key), ['carol', '#crew']);
});

test('sync asks after the last seq received without a gap, and remembers it', () => {
  const storage = new MemoryStorage();
  const st = new SeqState(storage, 'k');
  assert.equal(st.last, null);
  st.through(10);
  st.received(11);
  st.received(13); // 12 is missing: a sync must still ask after 11
  assert.equal(st.last, 11);
  st.received(12);
  assert.equal(st.last, 13);
  st.received(13);
  st.received(7);
  assert.equal(st.last, 13);
  st.received(15);
  st.through(14); // a sync answer: everything through 14 was sent
  assert.equal(st.last, 14);
  st.received(16);
  assert.equal(st.last, 16);
  const again = new SeqState(storage, 'k'); // the page reloaded
  assert.equal(again.last, 16);
});
