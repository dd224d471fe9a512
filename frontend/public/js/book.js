// A local order book kept from a depth snapshot plus the diff stream, following Binance's
// documented procedure: buffer the stream, fetch /api/v3/depth, drop events with
// u <= lastUpdateId, then apply each event in order; an event that does not follow the one
// before it (U > previous u + 1) means one was missed, and the book is fetched again.

import { parseUnits } from "./decimal.js";

export class LocalBook {
  constructor() {
    this.reset();
  }

  reset() {
    // price in units (BigInt, so "1.5" and "1.50000000" are one level) -> [price, qty] texts
    this.bids = new Map();
    this.asks = new Map();
    this.lastUpdateId = null; // null: no snapshot yet
    this.buffer = [];
  }

  get synced() {
    return this.lastUpdateId !== null;
  }

  loadSnapshot(snapshot) {
    this.bids = new Map();
    this.asks = new Map();
    for (const [p, q] of snapshot.bids) setLevel(this.bids, p, q);
    for (const [p, q] of snapshot.asks) setLevel(this.asks, p, q);
    this.lastUpdateId = snapshot.lastUpdateId;
    const buffered = this.buffer;
    this.buffer = [];
    for (const event of buffered) {
      if (!this.apply(event)) return false;
    }
    return true;
  }

  // Returns false when the stream skipped an update: the caller fetches a new snapshot.
  apply(event) {
    if (!this.synced) {
      this.buffer.push(event);
      return true;
    }
    if (event.u <= this.lastUpdateId) return true;
    if (event.U > this.lastUpdateId + 1) {
      this.lastUpdateId = null;
      this.buffer = [event];
      return false;
    }
    for (const [p, q] of event.b) setLevel(this.bids, p, q);
    for (const [p, q] of event.a) setLevel(this.asks, p, q);
    this.lastUpdateId = event.u;
    return true;
  }

  // The best `depth` levels of each side as [[priceText, qtyText]], best first.
  levels(depth) {
    return {
      bids: sortedLevels(this.bids, true).slice(0, depth),
      asks: sortedLevels(this.asks, false).slice(0, depth),
    };
  }
}

function setLevel(side, price, qty) {
  const key = parseUnits(price);
  if (parseUnits(qty) === 0n) side.delete(key);
  else side.set(key, [price, qty]);
}

function sortedLevels(side, descending) {
  const keys = [...side.keys()];
  keys.sort((x, y) => {
    if (x === y) return 0;
    const less = x < y ? -1 : 1;
    return descending ? -less : less;
  });
  return keys.map((key) => side.get(key));
}
