-- The durable record of what the engine did, written by the trade recorder from bourse.events
-- (bourse/record/ maps events to rows, bourse/adapters/record_store.py writes them). See
-- docs/record.md for which REST read each index serves.
--
-- Conventions: every amount and price is a bigint in 1e-8 units (never float or numeric);
-- times are bigint milliseconds since the epoch, copied from the events (the engine's command
-- time, so a replay writes identical rows); `seq` is the event's global sequence number.
-- Account 0 is the fee account; account -1 is EXTERNAL, the ledger's counterpart of deposits
-- and withdrawals (money entering or leaving the exchange).

-- Progress per consumer: the highest seq applied. Read FOR UPDATE at the start of every batch
-- transaction, so events at or below it are dropped (a re-delivered batch changes nothing) and
-- two recorders cannot interleave.
CREATE TABLE applied_events (
    consumer   text        PRIMARY KEY,
    last_seq   bigint      NOT NULL CHECK (last_seq >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Seqs a consumer never saw: a poison record (reported failed, the rest of its batch applied)
-- or events dropped by retention. An operator reads this table; it is empty when all is well.
CREATE TABLE record_gaps (
    consumer    text        NOT NULL,
    from_seq    bigint      NOT NULL,
    to_seq      bigint      NOT NULL CHECK (to_seq >= from_seq),
    detected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, from_seq)
);

-- Orders, current state: one row per order, updated by each of its execution reports.
CREATE TABLE orders (
    symbol          text    NOT NULL,
    order_id        bigint  NOT NULL,
    account_id      bigint  NOT NULL,
    client_order_id text    NOT NULL,
    side            text    NOT NULL CHECK (side IN ('BUY', 'SELL')),
    type            text    NOT NULL,
    time_in_force   text,
    quantity        bigint  NOT NULL,
    price           bigint  NOT NULL,
    stop_price      bigint  NOT NULL,
    iceberg_qty     bigint  NOT NULL,
    quote_order_qty bigint  NOT NULL,
    stp_mode        text    NOT NULL,
    status          text    NOT NULL,
    executed_qty    bigint  NOT NULL,
    cum_quote       bigint  NOT NULL,
    prevented_qty   bigint  NOT NULL,
    is_working      boolean NOT NULL,
    working_ts      bigint  NOT NULL,
    created_ts      bigint  NOT NULL,
    update_ts       bigint  NOT NULL,
    last_seq        bigint  NOT NULL,
    PRIMARY KEY (symbol, order_id)
);
-- allOrders (orderId >= fromId, or by time) and getOrder by origClientOrderId.
CREATE INDEX orders_by_account ON orders (account_id, symbol, order_id);
CREATE INDEX orders_by_account_time ON orders (account_id, symbol, created_ts);
CREATE INDEX orders_by_client_id ON orders (account_id, symbol, client_order_id);

-- Orders, history: every execution report as it was emitted.
CREATE TABLE order_events (
    seq                    bigint  PRIMARY KEY,
    ts                     bigint  NOT NULL,
    symbol                 text    NOT NULL,
    order_id               bigint  NOT NULL,
    account_id             bigint  NOT NULL,
    exec_type              text    NOT NULL,
    status                 text    NOT NULL,
    reject_reason          text    NOT NULL,
    last_qty               bigint  NOT NULL,
    last_price             bigint  NOT NULL,
    last_quote             bigint  NOT NULL,
    cum_qty                bigint  NOT NULL,
    cum_quote              bigint  NOT NULL,
    commission             bigint  NOT NULL,
    commission_asset       text    NOT NULL,
    trade_id               bigint  NOT NULL,
    is_maker               boolean NOT NULL,
    is_working             boolean NOT NULL,
    working_ts             bigint  NOT NULL,
    cancel_client_order_id text    NOT NULL,
    prevented_match_id     bigint  NOT NULL,
    prevented_qty          bigint  NOT NULL,
    last_prevented_qty     bigint  NOT NULL,
    counter_order_id       bigint  NOT NULL
);
CREATE INDEX order_events_by_order ON order_events (symbol, order_id, seq);

-- Trades, public: what /api/v3/trades and historicalTrades show.
CREATE TABLE trades (
    symbol            text    NOT NULL,
    trade_id          bigint  NOT NULL,
    seq               bigint  NOT NULL,
    ts                bigint  NOT NULL,
    price             bigint  NOT NULL CHECK (price > 0),
    qty               bigint  NOT NULL CHECK (qty > 0),
    quote_qty         bigint  NOT NULL CHECK (quote_qty > 0),
    buyer_order_id    bigint  NOT NULL,
    seller_order_id   bigint  NOT NULL,
    buyer_account_id  bigint  NOT NULL,
    seller_account_id bigint  NOT NULL,
    is_buyer_maker    boolean NOT NULL,
    PRIMARY KEY (symbol, trade_id)
);
-- Trades in a time window (24h tickers, klines rebuilt, trades by time).
CREATE INDEX trades_by_time ON trades (symbol, ts);

-- Trades, per account side: what /api/v3/myTrades shows (a self-trade has two rows).
CREATE TABLE account_trades (
    account_id       bigint  NOT NULL,
    symbol           text    NOT NULL,
    trade_id         bigint  NOT NULL,
    is_buyer         boolean NOT NULL,
    order_id         bigint  NOT NULL,
    is_maker         boolean NOT NULL,
    price            bigint  NOT NULL,
    qty              bigint  NOT NULL,
    quote_qty        bigint  NOT NULL,
    commission       bigint  NOT NULL,
    commission_asset text    NOT NULL,
    ts               bigint  NOT NULL,
    seq              bigint  NOT NULL,
    PRIMARY KEY (account_id, symbol, trade_id, is_buyer)
);
CREATE INDEX account_trades_by_time ON account_trades (account_id, symbol, ts);
CREATE INDEX account_trades_by_order ON account_trades (account_id, symbol, order_id);

-- Balances projection: each account's (free, locked) per asset as of last_seq. Traders' rows
-- come from AccountBalances events; the fee account's (0) from the commissions it receives.
CREATE TABLE balances (
    account_id bigint NOT NULL,
    asset      text   NOT NULL,
    free       bigint NOT NULL CHECK (free >= 0),
    locked     bigint NOT NULL CHECK (locked >= 0),
    last_seq   bigint NOT NULL,
    update_ts  bigint NOT NULL,
    PRIMARY KEY (account_id, asset)
);

-- Double-entry ledger. One transaction = one event (seq) and its legs; a positive amount
-- credits the account's holding of the asset, a negative one debits it, and every
-- transaction sums to zero per asset (debits = credits). Kinds:
--   TRADE      (Trade event): seller -qty base, buyer +qty base, buyer -quote, seller +quote
--   FEE        (a fill's ExecutionReport): payer -commission, fee account 0 +commission
--   DEPOSIT    (BalanceUpdate > 0): EXTERNAL (-1) -amount, account +amount
--   WITHDRAWAL (BalanceUpdate < 0): account -amount, EXTERNAL (-1) +amount
-- TRADE and FEE rows carry (symbol, trade_id), so a trade with its fees balances on its own.
CREATE TABLE ledger_entries (
    seq        bigint   NOT NULL,
    leg        smallint NOT NULL,
    kind       text     NOT NULL CHECK (kind IN ('TRADE', 'FEE', 'DEPOSIT', 'WITHDRAWAL')),
    account_id bigint   NOT NULL,
    asset      text     NOT NULL,
    amount     bigint   NOT NULL CHECK (amount <> 0),
    symbol     text,
    trade_id   bigint,
    ts         bigint   NOT NULL,
    PRIMARY KEY (seq, leg)
);
CREATE INDEX ledger_by_account ON ledger_entries (account_id, asset, seq);
CREATE INDEX ledger_by_trade ON ledger_entries (symbol, trade_id) WHERE trade_id IS NOT NULL;

-- Klines for every Binance interval, maintained from trades. first/last_trade_id let a merge
-- refuse trades it already holds.
CREATE TABLE klines (
    symbol           text     NOT NULL,
    interval         text     NOT NULL,
    open_time        bigint   NOT NULL,
    close_time       bigint   NOT NULL,
    open             bigint   NOT NULL,
    high             bigint   NOT NULL,
    low              bigint   NOT NULL,
    close            bigint   NOT NULL,
    volume           bigint   NOT NULL,
    quote_volume     bigint   NOT NULL,
    trades           integer  NOT NULL,
    taker_buy_volume bigint   NOT NULL,
    taker_buy_quote  bigint   NOT NULL,
    first_trade_id   bigint   NOT NULL,
    last_trade_id    bigint   NOT NULL,
    PRIMARY KEY (symbol, interval, open_time)
);

-- Aggregate trades: consecutive trades of one taker order at one price. agg_id is the first
-- trade id of the run (ascending per symbol, not contiguous).
CREATE TABLE agg_trades (
    symbol         text    NOT NULL,
    agg_id         bigint  NOT NULL,
    last_trade_id  bigint  NOT NULL,
    taker_order_id bigint  NOT NULL,
    price          bigint  NOT NULL,
    qty            bigint  NOT NULL,
    ts             bigint  NOT NULL,
    is_buyer_maker boolean NOT NULL,
    PRIMARY KEY (symbol, agg_id)
);
CREATE INDEX agg_trades_by_time ON agg_trades (symbol, ts);
