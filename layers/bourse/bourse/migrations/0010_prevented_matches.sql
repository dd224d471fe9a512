-- GET /api/v3/myPreventedMatches reads a symbol's TRADE_PREVENTION execution reports by
-- prevented match id or by either order of the match (order_id or counter_order_id): a
-- partial index keeps that a scan of the few prevention rows, not of every order event.
CREATE INDEX order_events_prevented ON order_events (symbol, prevented_match_id)
    WHERE exec_type = 'TRADE_PREVENTION';
