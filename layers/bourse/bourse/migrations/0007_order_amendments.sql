-- Order amend keep priority (issue 16): every amendment of an order, what GET
-- /api/v3/order/amendments serves. Written by the trade recorder from the engine's
-- OrderAmended events (bourse/record/rows.py); append-only, one row per amendment.
-- execution_id is the seq of the order's ExecutionReport REPLACED (the "I" of its
-- executionReport and the executionId of the amend response); ts the command's time.
CREATE TABLE order_amendments (
    symbol               text   NOT NULL,
    order_id             bigint NOT NULL,
    execution_id         bigint NOT NULL,
    account_id           bigint NOT NULL,
    orig_client_order_id text   NOT NULL,
    new_client_order_id  text   NOT NULL,
    orig_qty             bigint NOT NULL CHECK (orig_qty > 0),
    new_qty              bigint NOT NULL CHECK (new_qty > 0 AND new_qty < orig_qty),
    ts                   bigint NOT NULL,
    seq                  bigint NOT NULL UNIQUE,
    -- the read: one order's amendments from an execution id on, in order
    PRIMARY KEY (symbol, order_id, execution_id)
);

-- The recorder appends (COPY reads the column types first: SELECT). The reader's SELECT comes
-- from 0006's default privileges. Guarded: the role is 0006's, and a cluster without it (a
-- database migrated before 0006 existed) has nobody to grant to.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bourse_recorder') THEN
        GRANT SELECT, INSERT ON order_amendments TO bourse_recorder;
    END IF;
END
$$;
