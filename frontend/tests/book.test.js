// The local book: snapshot + diff stream as Binance documents, resync on a missed update.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LocalBook } from "../public/js/book.js";

const snapshot = {
  lastUpdateId: 10,
  bids: [["100.00000000", "1.00000000"], ["99.00000000", "2.00000000"]],
  asks: [["101.00000000", "1.50000000"]],
};

test("buffers until the snapshot, drops what it already has, applies the rest", () => {
  const book = new LocalBook();
  assert.ok(book.apply({ U: 9, u: 10, b: [["98", "5"]], a: [] })); // older than the snapshot
  assert.ok(book.apply({ U: 11, u: 12, b: [["100.00", "0"]], a: [["102", "3"]] }));
  assert.ok(!book.synced);
  assert.ok(book.loadSnapshot(snapshot));
  assert.deepEqual(book.levels(5), {
    bids: [["99.00000000", "2.00000000"]],
    asks: [["101.00000000", "1.50000000"], ["102", "3"]],
  });
  assert.ok(book.apply({ U: 13, u: 13, b: [["99.5", "1"]], a: [["101.00000000", "0.00000000"]] }));
  assert.deepEqual(book.levels(1), { bids: [["99.5", "1"]], asks: [["102", "3"]] });
});

test("a gap in the update ids asks for a new snapshot", () => {
  const book = new LocalBook();
  book.loadSnapshot(snapshot);
  assert.ok(!book.apply({ U: 15, u: 16, b: [], a: [] }));
  assert.ok(!book.synced);
});

test("levels sort by price value, not by text", () => {
  const book = new LocalBook();
  book.loadSnapshot({
    lastUpdateId: 1,
    bids: [["9.5", "1"], ["10", "1"], ["100", "1"]],
    asks: [["1000", "1"], ["200", "1"]],
  });
  assert.deepEqual(book.levels(3).bids.map(([p]) => p), ["100", "10", "9.5"]);
  assert.deepEqual(book.levels(3).asks.map(([p]) => p), ["200", "1000"]);
});
