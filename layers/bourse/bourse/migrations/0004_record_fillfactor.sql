-- orders and balances are updated in place by every batch (an order's status and filled
-- quantity, an account's free and locked). None of the updated columns is indexed, so with
-- free space left on each page PostgreSQL can update them as heap-only tuples (HOT): no new
-- index entries, far less write amplification for the recorder.
ALTER TABLE orders SET (fillfactor = 70);
ALTER TABLE balances SET (fillfactor = 70);
