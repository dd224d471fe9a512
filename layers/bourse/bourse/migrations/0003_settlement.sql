-- Settlement (functions/settlement): each trade fill, as notified on SNS trade-fills, checked
-- against the record's ledger once; breaks kept for operators; per-account daily statements.
-- Amounts are bigint 1e-8 units, times bigint ms, as in 0002.

-- A fill settles once: the key makes a re-delivered SQS message a no-op.
CREATE TABLE settled_fills (
    symbol     text        NOT NULL,
    trade_id   bigint      NOT NULL,
    is_buyer   boolean     NOT NULL,
    account_id bigint      NOT NULL,
    seq        bigint      NOT NULL,
    ok         boolean     NOT NULL,
    settled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, trade_id, is_buyer)
);

-- What did not reconcile, in words, per fill; also published to the alerts topic.
CREATE TABLE settlement_breaks (
    symbol      text        NOT NULL,
    trade_id    bigint      NOT NULL,
    is_buyer    boolean     NOT NULL,
    account_id  bigint      NOT NULL,
    problem     text        NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, trade_id, is_buyer, problem)
);

-- Per account, UTC day and asset: what its fills received, paid and paid in fees.
CREATE TABLE daily_statements (
    account_id bigint  NOT NULL,
    day        date    NOT NULL,
    asset      text    NOT NULL,
    received   bigint  NOT NULL DEFAULT 0,
    paid       bigint  NOT NULL DEFAULT 0,
    fees       bigint  NOT NULL DEFAULT 0,
    fills      integer NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, day, asset)
);
