-- The admin plane in the record (issue 13): the audit log of every admin command, the funding
-- lifecycle (deposits, withdrawals) and account statuses, written by the trade recorder from
-- the engine's AdminAction, FundingUpdate and AccountUpdated events (bourse/record/rows.py).
-- Conventions as in 0002: amounts bigint 1e-8 units, times bigint ms from the events (a replay
-- writes identical rows), seq the event's global sequence number.

-- Every admin command and every refused one (RejectedAdmin, code -1002), accepted or not: who
-- asked what, and what the engine answered. Append-only, one row per AdminAction event.
CREATE TABLE admin_log (
    seq        bigint  PRIMARY KEY,
    ts         bigint  NOT NULL,
    request_id text    NOT NULL,
    command    text    NOT NULL,
    principal  text    NOT NULL,
    code       integer NOT NULL,
    msg        text    NOT NULL,
    detail     jsonb  -- the command's body as the engine saw it; NULL when none
);
CREATE INDEX admin_log_by_time ON admin_log (ts);
-- The refused ones (forged, unsigned, replayed) are what an operator looks for first.
CREATE INDEX admin_log_refused ON admin_log (seq) WHERE code <> 0;

-- Deposits and withdrawals, current state: one row per funding id and kind (a deposit's id is
-- its txId, a withdrawal's its withdrawalId). requested_* are the first event's (CREDITED or
-- REQUESTED), updated_* the newest's; the merge is guarded by updated_seq.
CREATE TABLE funding (
    funding_id    text   NOT NULL,
    kind          text   NOT NULL CHECK (kind IN ('DEPOSIT', 'WITHDRAWAL')),
    account_id    bigint NOT NULL,
    asset         text   NOT NULL,
    amount        bigint NOT NULL CHECK (amount > 0),
    status        text   NOT NULL
                  CHECK (status IN ('CREDITED', 'REQUESTED', 'COMPLETED', 'FAILED', 'CANCELED')),
    tx_id         text   NOT NULL,
    requested_seq bigint NOT NULL,
    updated_seq   bigint NOT NULL CHECK (updated_seq >= requested_seq),
    requested_ts  bigint NOT NULL,
    updated_ts    bigint NOT NULL,
    PRIMARY KEY (funding_id, kind)
);
-- GET /admin/funding: newest first, all accounts or one.
CREATE INDEX funding_by_update ON funding (updated_seq);
CREATE INDEX funding_by_account ON funding (account_id, updated_seq);

-- Account statuses (AccountUpdated: created ACTIVE, frozen, unfrozen). The accounts table of
-- 0001 had no writer; the engine now owns account ids and statuses, so the record follows it.
ALTER TABLE accounts DROP CONSTRAINT accounts_status_check;
ALTER TABLE accounts
    ADD CONSTRAINT accounts_status_check
        CHECK (status IN ('ACTIVE', 'FROZEN', 'SUSPENDED', 'CLOSED')),
    ALTER COLUMN label SET DEFAULT '',
    ADD COLUMN last_seq  bigint NOT NULL DEFAULT 0,
    ADD COLUMN update_ts bigint NOT NULL DEFAULT 0;
