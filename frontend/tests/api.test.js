// Signing in the browser is Binance's: HMAC-SHA256 (WebCrypto) over the urlencoded parameters.
import assert from "node:assert/strict";
import { test } from "node:test";

import { encodeParams, hmacSha256Hex } from "../public/js/api.js";

test("encodes parameters as urllib.parse.urlencode does", () => {
  const query = encodeParams({
    symbol: "BTCUSDT",
    side: "BUY",
    price: "30000",
    quantity: "0.01",
    newClientOrderId: "a b*c~(d)!'",
    empty: "",
    missing: undefined,
    timestamp: 1,
  });
  assert.equal(
    query,
    "symbol=BTCUSDT&side=BUY&price=30000&quantity=0.01&newClientOrderId=a+b%2Ac~%28d%29%21%27&timestamp=1",
  );
});

test("signs as Binance documents", async () => {
  // Binance's own example (Spot API docs, "SIGNED endpoint examples for POST /api/v3/order").
  const secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
  const payload =
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
  assert.equal(
    await hmacSha256Hex(secret, payload),
    "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71",
  );
});
