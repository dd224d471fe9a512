-- The record keeps up with the matching service (issue 18): two indexes that no read uses
-- were a quarter of the recorder's PostgreSQL time (bench/recorder_bench.py: the backend's
-- CPU for the standard workload's 242,733 events went from 2.34-2.69 s to 1.86 s without
-- them). ledger_by_account (account_id, asset, seq) took its rows in random order across the
-- accounts, the costliest index write of the record; order_events_by_order duplicated what
-- the orders table answers. Settlement reads the ledger by trade (ledger_by_trade), the REST
-- history reads order_events only through order_events_prevented; an operator's one-off
-- audit of an account's ledger scans instead. A read that needs either comes with its index.
DROP INDEX IF EXISTS ledger_by_account;
DROP INDEX IF EXISTS order_events_by_order;
