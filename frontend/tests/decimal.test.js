// Amounts in the page: exact 1e-8 units, strict parsing, formatting with a step's decimals.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as dec from "../public/js/decimal.js";

test("parses plain decimals into 1e-8 units", () => {
  assert.equal(dec.parseUnits("0.01"), 1_000_000n);
  assert.equal(dec.parseUnits("65000.5"), 6_500_050_000_000n);
  assert.equal(dec.parseUnits("0.100000000"), 10_000_000n);
  assert.equal(dec.parseUnits(" 7 "), 700_000_000n);
});

test("refuses what the exchange refuses", () => {
  for (const bad of ["", "-1", "1e5", "NaN", "Infinity", "1,5", "0x10", ".", "0.000000001"]) {
    assert.throws(() => dec.parseUnits(bad), dec.AmountError, bad);
  }
});

test("formats with the step's decimals", () => {
  assert.equal(dec.decimalsOf("0.01000000"), 2);
  assert.equal(dec.decimalsOf("0.00001000"), 5);
  assert.equal(dec.decimalsOf("1.00000000"), 0);
  assert.equal(dec.formatText("65000.50000000", 2), "65000.50");
  assert.equal(dec.formatText("0.00123000", 5), "0.00123");
  assert.equal(dec.formatUnits(-150_000_000n, 2), "-1.50");
  assert.equal(dec.formatUnits(5n), "0.00000005");
});

test("notional is exact where floats are not", () => {
  // 0.1 * 3 in floating point is 0.30000000000000004
  assert.equal(dec.formatUnits(dec.notional(dec.parseUnits("0.1"), dec.parseUnits("3"))), "0.30000000");
  const total = dec.notional(dec.parseUnits("30000"), dec.parseUnits("0.01"));
  assert.equal(dec.formatUnits(total, 7), "300.0000000");
  assert.ok(dec.isMultiple(dec.parseUnits("30000.01"), dec.parseUnits("0.01")));
  assert.ok(!dec.isMultiple(dec.parseUnits("30000.001"), dec.parseUnits("0.01")));
});
