-- One PostgreSQL role per kind of function, each with the least privilege its code needs
-- (docs/operations.md, "PostgreSQL roles"); tests/unit/test_pg_function_roles.py checks these
-- grants against the SQL each function's adapters run, and template.yaml names each function's
-- role (BOURSE_PG_USER) and its rds-db:connect user. The owner (the app's role that runs the
-- migrations) keeps everything else; a later migration that adds a table a writer needs grants
-- it there, the reader's SELECT follows by the default privileges below.
--
--   bourse_reader      market data, account, WebSocket API and admin reads: SELECT only
--   bourse_recorder    the trade recorder: the record's tables it writes (rows.py), no DELETE
--   bourse_settlement  settlement: reads the fill's trade and ledger, writes its own tables
--
-- Roles belong to the cluster, not to the database: every database migrated here (a test's
-- throwaway one, a second stack's) shares them, so creating one that exists is not an error,
-- nor is a concurrent runner creating it first (duplicate_object, or unique_violation when two
-- commit together). They log in without a password: locally pg_hba trusts 127.0.0.1, on AWS
-- only with IAM tokens (rds_iam, where Aurora has it).
DO $$ BEGIN CREATE ROLE bourse_reader LOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE bourse_recorder LOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE bourse_settlement LOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
-- Aurora's IAM authentication (at the writer, and RDS Proxy's end-to-end IAM); a plain
-- PostgreSQL such as the local stack's has no rds_iam.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_iam') THEN
        GRANT rds_iam TO bourse_reader, bourse_recorder, bourse_settlement;
    END IF;
END
$$;

-- The owner is a member of each: it may end their sessions (DROP DATABASE .. WITH (FORCE) of
-- a test's database, pg_terminate_backend in an incident) without being a superuser.
GRANT bourse_reader, bourse_recorder, bourse_settlement TO CURRENT_USER;

-- Nobody but the owner creates objects in the schema (PostgreSQL 15's default; said here for
-- a database made from an older template), and only the recorder makes temp tables (its merge
-- staging, record_store._TEMP_TABLES).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO bourse_reader, bourse_recorder, bourse_settlement;
DO $$
BEGIN
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO bourse_recorder', current_database());
END
$$;

-- Reads: everything in the record, now and in later migrations, and nothing else.
GRANT SELECT ON ALL TABLES IN SCHEMA public TO bourse_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO bourse_reader;

-- The recorder (bourse/adapters/record_store.py, and record_reads.rolling_ticker for the hot
-- cache): COPY appends, INSERT .. ON CONFLICT DO UPDATE merges, its high-water mark FOR UPDATE.
-- SELECT where a statement reads: merges and conflict targets read the stored row, COPY reads
-- the column types first, its temp tables are made LIKE the real ones. record_gaps is only
-- ever appended to (ON CONFLICT DO NOTHING without a target reads nothing).
GRANT INSERT ON record_gaps TO bourse_recorder;
GRANT SELECT, INSERT ON order_events, trades, account_trades, ledger_entries, admin_log
TO bourse_recorder;
GRANT SELECT, INSERT, UPDATE ON
    applied_events, orders, balances, klines, agg_trades, symbols, funding, accounts
TO bourse_recorder;

-- Settlement (bourse/adapters/settlement_store.py): the fill as recorded, then its verdict.
GRANT SELECT ON trades, symbols, ledger_entries, account_trades TO bourse_settlement;
GRANT INSERT ON settled_fills, settlement_breaks TO bourse_settlement;
GRANT SELECT, INSERT, UPDATE ON daily_statements TO bourse_settlement;
