// The inbox seq state of this browser (per user and device), kept in
// localStorage: `last` is the seq through which everything was received
// (sync asks for what follows), `epoch` the store epoch it belongs to.
export class SeqState {
  constructor(storage, key) {
    this.storage = storage;
    this.key = key;
    const saved = JSON.parse(storage.getItem(key) || 'null');
    this.last = saved ? saved.last : null;
    this.epoch = saved ? saved.epoch : null;
    this.above = new Set(); // seqs received beyond a gap, this page only
  }

  save() {
    this.storage.setItem(this.key, JSON.stringify({ last: this.last, epoch: this.epoch }));
  }

  /** A seq arrived: `last` moves only over contiguous seqs, so a gap is synced. */
  received(seq) {
    if (this.last === null || seq <= this.last) return;
    this.above.add(seq);
    while (this.above.has(this.last + 1)) {
      this.above.delete(this.last + 1);
      this.last += 1;
    }
    this.save();
  }

  /** Everything through seq was published to us (a sync answer's `last`). */
  through(seq) {
    if (this.last === null || seq > this.last) this.last = seq;
    for (const s of this.above) if (s <= this.last) this.above.delete(s);
    this.save();
  }
}
