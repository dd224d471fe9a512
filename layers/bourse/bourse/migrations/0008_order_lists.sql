-- Order lists (issue 16): OCO, OTO and OTOCO lists as their newest ListStatus event left them,
-- what GET /api/v3/orderList, /allOrderList and /openOrderList serve. Written by the trade
-- recorder (bourse/record/rows.py); one row per list, updated in seq order (last_seq guards a
-- replayed batch). orders: [[orderId, clientOrderId], ...] in ascending order id. Each order's
-- own state stays in orders (its order_list_id column, added here, names its list).
CREATE TABLE order_lists (
    order_list_id        bigint PRIMARY KEY,
    account_id           bigint NOT NULL,
    symbol               text   NOT NULL,
    contingency_type     text   NOT NULL CHECK (contingency_type IN ('OCO', 'OTO')),
    list_status_type     text   NOT NULL,
    list_order_status    text   NOT NULL CHECK (list_order_status IN ('EXECUTING', 'ALL_DONE', 'REJECT')),
    list_client_order_id text   NOT NULL,
    transaction_time     bigint NOT NULL,
    orders               jsonb  NOT NULL,
    update_ts            bigint NOT NULL,
    last_seq             bigint NOT NULL
);
-- allOrderList (fromId, or by time), openOrderList, and orderList by listClientOrderId.
CREATE INDEX order_lists_by_account ON order_lists (account_id, order_list_id);
CREATE INDEX order_lists_by_account_time ON order_lists (account_id, transaction_time);
CREATE INDEX order_lists_open ON order_lists (account_id) WHERE list_order_status = 'EXECUTING';
CREATE INDEX order_lists_by_client_id ON order_lists (account_id, list_client_order_id);

-- Binance's orderListId of every order: -1 unless it is in a list.
ALTER TABLE orders ADD COLUMN order_list_id bigint NOT NULL DEFAULT -1;

-- The recorder upserts (SELECT for ON CONFLICT's read of the row). The reader's SELECT comes
-- from 0006's default privileges. Guarded as in 0007: a cluster without 0006's role has
-- nobody to grant to.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bourse_recorder') THEN
        GRANT SELECT, INSERT, UPDATE ON order_lists TO bourse_recorder;
    END IF;
END
$$;
