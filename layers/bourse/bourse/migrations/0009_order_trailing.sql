-- A trailing stop's trailingDelta (BIPS; 0: not trailing) and trailingTime (when it started
-- tracking prices; -1 until then), so that allOrders and GET /api/v3/order answer them for
-- closed orders as the live view does for open ones. Defaults fill every existing row.
ALTER TABLE orders
    ADD COLUMN IF NOT EXISTS trailing_delta bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS trailing_time  bigint NOT NULL DEFAULT -1;
