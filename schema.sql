-- Calltrail: the whole current schema (PostgreSQL 13+).
--
-- Fresh installs and the tests load this file; `calltrail-ingest db init` applies it and is
-- idempotent: every statement is CREATE ... IF NOT EXISTS or guarded, so running it again on a
-- database at the current version changes nothing. The version is kept in schema_version.
--
-- Words (see PRODUCT.md): a telephone system is one PBX; a call is one row of `calls`; its turns
-- are `call_segments`; `call_ring_attempts` records every extension that rang.

CREATE TABLE IF NOT EXISTS schema_version (
    -- A single row: the version of this file last applied.
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version     integer NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

-- Directory -----------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS branches (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name <> ''),
    title       text NOT NULL DEFAULT ''          -- display name (may be Persian)
);

CREATE TABLE IF NOT EXISTS telephone_systems (
    id                  bigserial PRIMARY KEY,
    branch_id           bigint NOT NULL REFERENCES branches (id),
    name                text NOT NULL UNIQUE CHECK (name <> ''),
    title               text NOT NULL DEFAULT '',
    ami_host            text NOT NULL DEFAULT '',
    ami_port            integer NOT NULL DEFAULT 5038 CHECK (ami_port BETWEEN 1 AND 65535),
    country_code        text NOT NULL DEFAULT '98' CHECK (country_code ~ '^[0-9]{1,3}$'),
    city_code           text NOT NULL DEFAULT '21' CHECK (city_code ~ '^[0-9]{0,5}$'),
    outgoing_prefix     text NOT NULL DEFAULT '' CHECK (outgoing_prefix ~ '^[0-9*#]*$'),
    timezone            text NOT NULL DEFAULT 'Asia/Tehran',
    -- Rules telling trunks from extensions (see the [[systems]] keys of the daemon's config):
    extension_from      text NOT NULL DEFAULT 'endpoint'
                        CHECK (extension_from IN ('endpoint', 'callerid', 'accountcode')),
    extension_pattern   text NOT NULL DEFAULT '^\d{2,6}$',
    trunk_patterns      text[] NOT NULL DEFAULT '{}',
    inbound_contexts    text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS telephone_systems_branch ON telephone_systems (branch_id);

CREATE TABLE IF NOT EXISTS users (
    id              bigserial PRIMARY KEY,
    username        text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.@-]+$'),
    full_name       text NOT NULL DEFAULT '',
    -- Roles: admin may do everything; the three managers may produce reports; agents take calls.
    roles           text[] NOT NULL DEFAULT '{}'
                    CHECK (roles <@ ARRAY['admin', 'sales_manager', 'crm_manager',
                                          'support_manager', 'agent']::text[]),
    password_hash   text,                          -- argon2; NULL: cannot log in
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- An extension is mapped to a user for a period, so re-assigning it does not rewrite history.
-- valid_to is exclusive; NULL means "still assigned".
CREATE TABLE IF NOT EXISTS extension_assignments (
    id              bigserial PRIMARY KEY,
    system_id       bigint NOT NULL REFERENCES telephone_systems (id),
    extension       text NOT NULL CHECK (extension ~ '^[0-9A-Za-z*#_-]+$'),
    user_id         bigint NOT NULL REFERENCES users (id),
    valid_from      timestamptz NOT NULL,
    valid_to        timestamptz,
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE INDEX IF NOT EXISTS extension_assignments_lookup
    ON extension_assignments (system_id, extension, valid_from);
CREATE INDEX IF NOT EXISTS extension_assignments_user ON extension_assignments (user_id);

-- Extensions seen on the wire that no user is (yet) assigned to; the daemon registers them.
CREATE TABLE IF NOT EXISTS unmapped_extensions (
    system_id       bigint NOT NULL REFERENCES telephone_systems (id),
    extension       text NOT NULL,
    first_seen      timestamptz NOT NULL,
    last_seen       timestamptz NOT NULL,
    call_count      bigint NOT NULL DEFAULT 0 CHECK (call_count >= 0),
    PRIMARY KEY (system_id, extension),
    CHECK (last_seen >= first_seen)
);

-- People and organisations of the CRM, with their phone numbers in E.164.
CREATE TABLE IF NOT EXISTS identities (
    id              bigserial PRIMARY KEY,
    external_id     text UNIQUE,                   -- the CRM's own id, for re-imports
    kind            text NOT NULL CHECK (kind IN ('person', 'organisation')),
    name            text NOT NULL CHECK (name <> ''),
    profile_url     text
);

CREATE TABLE IF NOT EXISTS identity_numbers (
    identity_id     bigint NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    number_e164     text NOT NULL CHECK (number_e164 ~ '^\+[1-9][0-9]{4,14}$'),
    raw             text NOT NULL DEFAULT '',      -- as it was written in the CRM
    PRIMARY KEY (identity_id, number_e164)
);
CREATE INDEX IF NOT EXISTS identity_numbers_number ON identity_numbers (number_e164);

-- Calls -----------------------------------------------------------------------------------------

-- One row per call. (system_id, call_id) is the idempotent key: call_id is the Linkedid of the
-- call's first channel, so storing the same call twice updates it instead of duplicating it.
CREATE TABLE IF NOT EXISTS calls (
    id                  bigserial PRIMARY KEY,
    system_id           bigint NOT NULL REFERENCES telephone_systems (id),
    call_id             text NOT NULL CHECK (call_id <> ''),
    linkedids           text[] NOT NULL DEFAULT '{}',
    direction           text NOT NULL CHECK (direction IN ('incoming', 'outgoing', 'internal')),
    status              text NOT NULL CHECK (status IN ('answered', 'missed', 'unanswered')),
    reason              text CHECK (reason IN ('abandoned', 'no_answer', 'busy', 'rejected',
                                               'failed', 'voicemail', 'ivr', 'unknown')),
    caller              text NOT NULL DEFAULT '',
    caller_name         text,
    callee              text NOT NULL DEFAULT '',
    external_number     text CHECK (external_number ~ '^\+[1-9][0-9]{4,14}$'),
    start_time          timestamptz NOT NULL,
    answer_time         timestamptz,
    end_time            timestamptz NOT NULL,
    wait_seconds        numeric(12, 3) NOT NULL CHECK (wait_seconds >= 0),
    talk_seconds        numeric(12, 3) NOT NULL CHECK (talk_seconds >= 0),
    duration_seconds    numeric(12, 3) NOT NULL CHECK (duration_seconds >= 0),
    transfer_count      integer NOT NULL CHECK (transfer_count >= 0),
    -- Extensions of the segments in order, and every extension that rang: for the agent filter.
    agents              text[] NOT NULL DEFAULT '{}',
    rang                text[] NOT NULL DEFAULT '{}',
    recovered           boolean NOT NULL DEFAULT false,   -- closed by reconciliation after an outage
    source              text NOT NULL DEFAULT 'ami' CHECK (source IN ('ami', 'cdr', 'replay')),
    stored_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (system_id, call_id),
    CHECK (end_time >= start_time),
    CHECK (answer_time IS NULL OR (answer_time >= start_time AND answer_time <= end_time)),
    -- Only an answered call has talk time and transfers; only incoming calls are "missed".
    CHECK ((status = 'answered') = (transfer_count > 0)),
    CHECK (status <> 'answered' OR answer_time IS NOT NULL),
    CHECK (status <> 'missed' OR direction = 'incoming'),
    CHECK (status = 'answered' OR talk_seconds = 0),
    CHECK ((status = 'answered') = (reason IS NULL))
);
-- The report filters: period (always), then system, type, agent, number.
CREATE INDEX IF NOT EXISTS calls_start ON calls (start_time);
CREATE INDEX IF NOT EXISTS calls_system_start ON calls (system_id, start_time);
CREATE INDEX IF NOT EXISTS calls_agents ON calls USING gin (agents);
CREATE INDEX IF NOT EXISTS calls_rang ON calls USING gin (rang);
CREATE INDEX IF NOT EXISTS calls_external_number ON calls (external_number, start_time);

-- The transfer chain: one row per turn, in order.
CREATE TABLE IF NOT EXISTS call_segments (
    call_pk         bigint NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq             integer NOT NULL CHECK (seq >= 1),
    extension       text NOT NULL,
    began_by        text NOT NULL CHECK (began_by IN ('answered', 'queue', 'blind_transfer',
                                                      'attended_transfer', 'pickup')),
    ring_start      timestamptz,
    answer_time     timestamptz NOT NULL,
    end_time        timestamptz NOT NULL,
    talk_seconds    numeric(12, 3) NOT NULL CHECK (talk_seconds >= 0),
    channel         text NOT NULL DEFAULT '',
    PRIMARY KEY (call_pk, seq),
    CHECK (end_time >= answer_time),
    CHECK (ring_start IS NULL OR ring_start <= answer_time)
);
CREATE INDEX IF NOT EXISTS call_segments_extension ON call_segments (extension);

-- Every extension that rang for a call, and how the ringing ended.
CREATE TABLE IF NOT EXISTS call_ring_attempts (
    call_pk         bigint NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    seq             integer NOT NULL CHECK (seq >= 1),
    extension       text NOT NULL,
    start_time      timestamptz NOT NULL,
    end_time        timestamptz,
    outcome         text NOT NULL CHECK (outcome IN ('answered', 'no_answer', 'busy', 'cancelled',
                                                     'answered_elsewhere', 'rejected', 'failed')),
    PRIMARY KEY (call_pk, seq),
    CHECK (end_time IS NULL OR end_time >= start_time)
);

-- Ingest bookkeeping ----------------------------------------------------------------------------

-- Per telephone system: where the daemon stands (for status pages and the operations view).
CREATE TABLE IF NOT EXISTS ingest_state (
    system_id           bigint PRIMARY KEY REFERENCES telephone_systems (id),
    last_event_at       timestamptz,
    last_call_stored_at timestamptz,
    calls_stored        bigint NOT NULL DEFAULT 0 CHECK (calls_stored >= 0),
    -- The journal position whose calls are all committed (journal file and offset).
    checkpoint          text,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- One row per history import (import-cdr), so operators can see what was loaded when.
CREATE TABLE IF NOT EXISTS import_runs (
    id              bigserial PRIMARY KEY,
    system_id       bigint NOT NULL REFERENCES telephone_systems (id),
    source_file     text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    rows_read       bigint NOT NULL DEFAULT 0 CHECK (rows_read >= 0),
    calls_stored    bigint NOT NULL DEFAULT 0 CHECK (calls_stored >= 0),
    rows_skipped    bigint NOT NULL DEFAULT 0 CHECK (rows_skipped >= 0)
);

-- Web app (reports/web, issue 7) ---------------------------------------------------------------

-- Failed web log-ins, one row per failure and key ('user:<lower-case name>' or 'addr:<address>'):
-- the login throttle (reports/web/ratelimit.py) counts them in a sliding window, so the limit holds
-- across every worker process of `calltrail-report serve`. Rows older than the window are deleted
-- as new failures are recorded.
CREATE TABLE IF NOT EXISTS web_login_failures (
    key             text NOT NULL,
    failed_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS web_login_failures_key ON web_login_failures (key, failed_at);
CREATE INDEX IF NOT EXISTS web_login_failures_failed_at ON web_login_failures (failed_at);

-- Report rollups (reports/, issue 5) ------------------------------------------------------------

-- Per telephone system and local day (in the system's time zone) and per direction and status:
-- call counts and sums, kept up to date by statement triggers on `calls`, so a season's or a year's
-- totals read a few thousand rows instead of millions (a Jalali month or season is a union of local
-- days). The report reads `calls` itself for detail rows, agent filters and other time zones.
CREATE TABLE IF NOT EXISTS report_daily_totals (
    system_id       bigint NOT NULL REFERENCES telephone_systems (id),
    day             date NOT NULL,                 -- local day in the system's time zone
    direction       text NOT NULL,
    status          text NOT NULL,
    calls           bigint NOT NULL DEFAULT 0,
    talk_seconds    numeric NOT NULL DEFAULT 0,
    wait_seconds    numeric NOT NULL DEFAULT 0,
    transfers       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (system_id, day, direction, status)
);

-- The three trigger functions fold a statement's transition tables into the rollup, sorted by key
-- so concurrent writers lock rollup rows in the same order (no deadlocks).
CREATE OR REPLACE FUNCTION report_rollup_on_insert() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO report_daily_totals AS t
           (system_id, day, direction, status, calls, talk_seconds, wait_seconds, transfers)
    SELECT n.system_id, (n.start_time AT TIME ZONE s.timezone)::date, n.direction, n.status,
           count(*), sum(n.talk_seconds), sum(n.wait_seconds), sum(n.transfer_count)
    FROM report_new_calls n JOIN telephone_systems s ON s.id = n.system_id
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (system_id, day, direction, status) DO UPDATE SET
        calls = t.calls + EXCLUDED.calls, talk_seconds = t.talk_seconds + EXCLUDED.talk_seconds,
        wait_seconds = t.wait_seconds + EXCLUDED.wait_seconds, transfers = t.transfers + EXCLUDED.transfers;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION report_rollup_on_delete() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    INSERT INTO report_daily_totals AS t
           (system_id, day, direction, status, calls, talk_seconds, wait_seconds, transfers)
    SELECT o.system_id, (o.start_time AT TIME ZONE s.timezone)::date, o.direction, o.status,
           -count(*), -sum(o.talk_seconds), -sum(o.wait_seconds), -sum(o.transfer_count)
    FROM report_old_calls o JOIN telephone_systems s ON s.id = o.system_id
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (system_id, day, direction, status) DO UPDATE SET
        calls = t.calls + EXCLUDED.calls, talk_seconds = t.talk_seconds + EXCLUDED.talk_seconds,
        wait_seconds = t.wait_seconds + EXCLUDED.wait_seconds, transfers = t.transfers + EXCLUDED.transfers;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION report_rollup_on_update() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    -- Old rows out and new rows in, in one upsert: a key may appear only once per statement.
    INSERT INTO report_daily_totals AS t
           (system_id, day, direction, status, calls, talk_seconds, wait_seconds, transfers)
    SELECT system_id, day, direction, status, sum(calls), sum(talk), sum(wait), sum(transfers)
    FROM (SELECT o.system_id, (o.start_time AT TIME ZONE s.timezone)::date AS day, o.direction, o.status,
                 -1 AS calls, -o.talk_seconds AS talk, -o.wait_seconds AS wait, -o.transfer_count AS transfers
          FROM report_old_calls o JOIN telephone_systems s ON s.id = o.system_id
          UNION ALL
          SELECT n.system_id, (n.start_time AT TIME ZONE s.timezone)::date, n.direction, n.status,
                 1, n.talk_seconds, n.wait_seconds, n.transfer_count
          FROM report_new_calls n JOIN telephone_systems s ON s.id = n.system_id) AS changes
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (system_id, day, direction, status) DO UPDATE SET
        calls = t.calls + EXCLUDED.calls, talk_seconds = t.talk_seconds + EXCLUDED.talk_seconds,
        wait_seconds = t.wait_seconds + EXCLUDED.wait_seconds, transfers = t.transfers + EXCLUDED.transfers;
    RETURN NULL;
END $fn$;

-- Recompute one system's rollup (all systems when NULL) from `calls`: used when the rollup is
-- created over existing calls, when a system's time zone changes, and after bulk loads that ran
-- with the triggers disabled.
CREATE OR REPLACE FUNCTION report_rollup_rebuild(only_system bigint) RETURNS void LANGUAGE sql AS $fn$
    DELETE FROM report_daily_totals WHERE only_system IS NULL OR system_id = only_system;
    INSERT INTO report_daily_totals (system_id, day, direction, status, calls, talk_seconds, wait_seconds, transfers)
    SELECT c.system_id, (c.start_time AT TIME ZONE s.timezone)::date, c.direction, c.status,
           count(*), sum(c.talk_seconds), sum(c.wait_seconds), sum(c.transfer_count)
    FROM calls c JOIN telephone_systems s ON s.id = c.system_id
    WHERE only_system IS NULL OR c.system_id = only_system
    GROUP BY 1, 2, 3, 4;
$fn$;

CREATE OR REPLACE FUNCTION report_rollup_on_timezone() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM report_rollup_rebuild(NEW.id);
    RETURN NULL;
END $fn$;

-- Triggers are created once (guarded, so init stays idempotent); the rollup is then filled from
-- the calls already stored, in the same transaction, after the triggers hold their lock on calls.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'calls'::regclass
                   AND tgname = 'report_rollup_insert') THEN
        CREATE TRIGGER report_rollup_insert AFTER INSERT ON calls
            REFERENCING NEW TABLE AS report_new_calls
            FOR EACH STATEMENT EXECUTE FUNCTION report_rollup_on_insert();
        CREATE TRIGGER report_rollup_update AFTER UPDATE ON calls
            REFERENCING OLD TABLE AS report_old_calls NEW TABLE AS report_new_calls
            FOR EACH STATEMENT EXECUTE FUNCTION report_rollup_on_update();
        CREATE TRIGGER report_rollup_delete AFTER DELETE ON calls
            REFERENCING OLD TABLE AS report_old_calls
            FOR EACH STATEMENT EXECUTE FUNCTION report_rollup_on_delete();
        CREATE TRIGGER report_rollup_timezone AFTER UPDATE OF timezone ON telephone_systems
            FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone)
            EXECUTE FUNCTION report_rollup_on_timezone();
        PERFORM report_rollup_rebuild(NULL);
    END IF;
END
$do$;

-- Keep this statement last and its form unchanged: ingest/store.py reads the version from it.
INSERT INTO schema_version (singleton, version) VALUES (true, 3)
    ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, applied_at = now()
    WHERE schema_version.version < EXCLUDED.version;
