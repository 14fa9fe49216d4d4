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
    system_id           bigint NOT NULL,       -- telephone_systems (id): see "Links between the calls tables"
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
    call_pk         bigint NOT NULL,           -- calls (id), deleted with it: see "Links between the calls tables"
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
    call_pk         bigint NOT NULL,           -- calls (id), deleted with it: see "Links between the calls tables"
    seq             integer NOT NULL CHECK (seq >= 1),
    extension       text NOT NULL,
    start_time      timestamptz NOT NULL,
    end_time        timestamptz,
    outcome         text NOT NULL CHECK (outcome IN ('answered', 'no_answer', 'busy', 'cancelled',
                                                     'answered_elsewhere', 'rejected', 'failed')),
    PRIMARY KEY (call_pk, seq),
    CHECK (end_time IS NULL OR end_time >= start_time)
);

-- Links between the calls tables ----------------------------------------------------------------

-- calls.system_id -> telephone_systems, call_segments.call_pk and call_ring_attempts.call_pk ->
-- calls (deleted with their call) were declarative foreign keys up to version 3. PostgreSQL checks
-- those with a trigger PER ROW (a query and a FOR KEY SHARE lock on the referenced row, written to
-- the WAL): for the millions of rows of a history import that was over a third of the server's
-- work. The triggers below keep the same rules with one check PER STATEMENT, over the statement's
-- transition table (one join), for every writer (the daemon's upserts, the importer's COPYs, and
-- anything else), and raise foreign_key_violation (23503) as the keys did:
--  * a segment or ring attempt whose call_pk is not in calls is refused (insert, or update of call_pk);
--  * deleting calls deletes their segments and ring attempts (ON DELETE CASCADE); TRUNCATE calls
--    empties them too (the key made it need CASCADE, which did the same); changing calls.id is
--    refused while details reference it;
--  * a call whose system_id is not in telephone_systems is refused (insert, or update of system_id);
--    deleting a telephone system (or changing its id) that calls reference is refused; TRUNCATE
--    telephone_systems (which its other keys make need CASCADE) empties calls as the key's CASCADE did.
--
-- Concurrency (READ COMMITTED, what every Calltrail connection uses). A key check must not let a
-- concurrent DELETE of the referenced row slip between the check and the commit:
--  * telephone systems are few: the check on calls locks each referenced system FOR KEY SHARE, once
--    per system and statement. A concurrent delete of that system waits for the writer's commit and
--    then sees its calls; a delete that came first makes the writer's lock wait, find the row gone
--    and raise.
--  * the details are written for calls their own transaction has just written: the importer COPYs
--    a batch's calls and details in one transaction, the daemon's statement upserts the call (an
--    insert, or an update that writes a new row version) in the same statement as its details. A
--    call row version written by the current transaction cannot be deleted by anyone else before
--    that transaction ends (a concurrent DELETE waits for it, then re-reads the row and its cascade
--    query, with a new snapshot, sees the new details). So no lock is taken for those parents
--    (xmin = this transaction's id), which is what keeps the check at one join. Any other parent
--    (a call committed before, or written in a subtransaction: a SAVEPOINT has its own xid) is
--    locked FOR KEY SHARE, once per call and statement, in id order, unless this transaction holds
--    a lock on calls that excludes writers (`import-cdr --bulk` holds ACCESS EXCLUSIVE); then the
--    check is repeated with the locks held. That path costs as much as the keys did, or more for
--    a COPY of millions of details: write details in the transaction that writes their calls.
--    (xmin is 32 bits: a frozen row whose xmin equals this transaction's id, 2^32 transactions
--    later, would go unlocked; the race then needs a concurrent delete of that very call.)
--  Under REPEATABLE READ or SERIALIZABLE, a deleter whose snapshot predates a writer's commit does
--  not see that writer's new rows (the keys' own checks used a newer "crosscheck" snapshot there and
--  raised a serialization failure); SERIALIZABLE on both sides still fails one of them. Calltrail's
--  writers and deleters all run in READ COMMITTED.
-- A bulk load (ingest/cdr_bulk.py) disables the two detail insert checks and checks the whole load at
-- the end with one anti-join per table, under its exclusive lock.

CREATE OR REPLACE FUNCTION calls_link_missing(tbl text, col text, key bigint, parent text) RETURNS void
LANGUAGE plpgsql AS $fn$
-- The error a broken link raises, worded as the foreign keys' own (foreign_key_violation, 23503).
BEGIN
    RAISE EXCEPTION 'insert or update on table "%" violates its link to "%": % % is not in %', tbl, parent, col, key,
                    parent
        USING ERRCODE = 'foreign_key_violation', TABLE = tbl, COLUMN = col,
              DETAIL = format('Key (%s)=(%s) is not present in table "%s".', col, key, parent);
END $fn$;

CREATE OR REPLACE FUNCTION calls_detail_check() RETURNS trigger LANGUAGE plpgsql AS $fn$
-- AFTER INSERT ... FOR EACH STATEMENT on call_segments and call_ring_attempts.
DECLARE
    me xid := pg_current_xact_id()::xid;
    missing bigint;
    others bigint;
    fresh text := current_setting('calltrail.new_calls', true);
BEGIN
    -- The usual case, a batch's details written right after its calls: when every call_pk is in the
    -- unbroken range of ids this transaction's last insert into calls wrote (calls_system_check notes it;
    -- deleting calls or changing their ids forgets it), the parents exist and are this transaction's own
    -- (nobody else can delete them before it ends). One scan of the new rows; no lookups.
    IF fresh <> '' AND NOT EXISTS (
            SELECT 1 FROM calls_detail_new
            WHERE call_pk NOT BETWEEN split_part(fresh, ':', 1)::bigint AND split_part(fresh, ':', 2)::bigint) THEN
        RETURN NULL;
    END IF;
    -- One index probe per new row: a correlated subquery is never turned into a join, so calls is
    -- never scanned (a join's plan could hash all of calls for every batch: quadratic over an import).
    SELECT min(p.call_pk) FILTER (WHERE p.writer IS NULL), count(*) FILTER (WHERE p.writer <> me)
      INTO missing, others
      FROM (SELECT n.call_pk, (SELECT c.xmin FROM calls c WHERE c.id = n.call_pk) AS writer
            FROM calls_detail_new n) p;
    IF missing IS NULL AND others > 0 AND NOT EXISTS (
            SELECT 1 FROM pg_locks
            WHERE locktype = 'relation' AND relation = 'calls'::regclass AND pid = pg_backend_pid() AND granted
              AND mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')) THEN
        PERFORM 1 FROM calls c WHERE c.id = ANY (ARRAY(SELECT call_pk FROM calls_detail_new)) AND c.xmin <> me
            ORDER BY c.id FOR KEY SHARE OF c;
        SELECT min(p.call_pk) INTO missing
          FROM (SELECT n.call_pk, (SELECT c.id FROM calls c WHERE c.id = n.call_pk) AS found
                FROM calls_detail_new n) p
         WHERE p.found IS NULL;
    END IF;
    IF missing IS NOT NULL THEN
        PERFORM calls_link_missing(TG_TABLE_NAME, 'call_pk', missing, 'calls');
    END IF;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION calls_detail_update_check() RETURNS trigger LANGUAGE plpgsql AS $fn$
-- AFTER UPDATE OF call_pk ... FOR EACH ROW (an upsert never changes call_pk: this never fires for them).
BEGIN
    PERFORM 1 FROM calls WHERE id = NEW.call_pk FOR KEY SHARE;
    IF NOT FOUND THEN
        PERFORM calls_link_missing(TG_TABLE_NAME, 'call_pk', NEW.call_pk, 'calls');
    END IF;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION calls_system_check() RETURNS trigger LANGUAGE plpgsql AS $fn$
-- AFTER INSERT ON calls FOR EACH STATEMENT: lock the systems referenced (once each), or raise.
DECLARE
    wanted bigint[];
    locked bigint[];
    missing bigint;
    lo bigint;
    hi bigint;
    inserted bigint;
BEGIN
    SELECT array_agg(DISTINCT system_id), min(id), max(id), count(*) INTO wanted, lo, hi, inserted
      FROM calls_system_new;
    -- The ids this statement inserted, when they are one unbroken range (a batch drawing its ids from
    -- the sequence at once): calls_detail_check then knows those parents exist without looking.
    PERFORM set_config('calltrail.new_calls', CASE WHEN inserted = hi - lo + 1 THEN lo || ':' || hi ELSE '' END,
                       true);
    SELECT array_agg(id) INTO locked
      FROM (SELECT id FROM telephone_systems WHERE id = ANY (wanted) ORDER BY id FOR KEY SHARE) s;
    IF cardinality(wanted) IS DISTINCT FROM cardinality(locked) THEN
        SELECT min(w) INTO missing FROM unnest(wanted) AS w WHERE w <> ALL (coalesce(locked, '{}'));
        PERFORM calls_link_missing('calls', 'system_id', missing, 'telephone_systems');
    END IF;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION calls_key_update_check() RETURNS trigger LANGUAGE plpgsql AS $fn$
-- AFTER UPDATE OF system_id, id ON calls FOR EACH ROW, when one of them changes (upserts change neither).
BEGIN
    PERFORM set_config('calltrail.new_calls', '', true);  -- calls_detail_check's range may have lost an id
    IF OLD.system_id IS DISTINCT FROM NEW.system_id THEN
        PERFORM 1 FROM telephone_systems WHERE id = NEW.system_id FOR KEY SHARE;
        IF NOT FOUND THEN
            PERFORM calls_link_missing('calls', 'system_id', NEW.system_id, 'telephone_systems');
        END IF;
    END IF;
    IF OLD.id IS DISTINCT FROM NEW.id AND (EXISTS (SELECT 1 FROM call_segments WHERE call_pk = OLD.id)
                                           OR EXISTS (SELECT 1 FROM call_ring_attempts WHERE call_pk = OLD.id)) THEN
        RAISE EXCEPTION 'update on table "calls" violates the link from its details: id % is still referenced', OLD.id
            USING ERRCODE = 'foreign_key_violation', TABLE = 'calls', COLUMN = 'id',
                  DETAIL = format('Key (id)=(%s) is still referenced from table "call_segments" or "call_ring_attempts".', OLD.id);
    END IF;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION calls_delete_details() RETURNS trigger LANGUAGE plpgsql AS $fn$
-- AFTER DELETE ON calls FOR EACH STATEMENT: what ON DELETE CASCADE did, in one statement per table.
BEGIN
    PERFORM set_config('calltrail.new_calls', '', true);  -- calls_detail_check's range may have lost some
    -- By the keys' index (= ANY of an array), never a scan of the details, however few calls go.
    DELETE FROM call_segments WHERE call_pk = ANY (ARRAY(SELECT id FROM calls_deleted));
    DELETE FROM call_ring_attempts WHERE call_pk = ANY (ARRAY(SELECT id FROM calls_deleted));
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION calls_truncate_details() RETURNS trigger LANGUAGE plpgsql AS $fn$
-- AFTER TRUNCATE ON calls. The details may be in the same TRUNCATE (then empty, and still open:
-- truncating them again here would fail), so only tables that still have rows are truncated.
BEGIN
    PERFORM set_config('calltrail.new_calls', '', true);  -- calls_detail_check's range is gone
    IF EXISTS (SELECT 1 FROM call_segments) THEN
        TRUNCATE call_segments;
    END IF;
    IF EXISTS (SELECT 1 FROM call_ring_attempts) THEN
        TRUNCATE call_ring_attempts;
    END IF;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION telephone_systems_calls_check() RETURNS trigger LANGUAGE plpgsql AS $fn$
-- AFTER DELETE OR UPDATE OF id ON telephone_systems FOR EACH ROW: refused while calls reference the
-- system (checked after the statement, as NO ACTION did: a statement deleting the calls too passes).
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.id = NEW.id THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM calls WHERE system_id = OLD.id) THEN
        RAISE EXCEPTION 'update or delete on table "telephone_systems" violates the link from "calls": system % has calls',
                        OLD.id
            USING ERRCODE = 'foreign_key_violation', TABLE = 'telephone_systems', COLUMN = 'id',
                  DETAIL = format('Key (id)=(%s) is still referenced from table "calls".', OLD.id);
    END IF;
    RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION telephone_systems_truncate_calls() RETURNS trigger LANGUAGE plpgsql AS $fn$
-- AFTER TRUNCATE ON telephone_systems (it needs CASCADE or every referencing table): calls go too.
BEGIN
    IF EXISTS (SELECT 1 FROM calls) THEN
        TRUNCATE calls;
    END IF;
    RETURN NULL;
END $fn$;

-- Created once (guarded, so init stays idempotent). A version 3 database loses its three foreign
-- keys in the same transaction (whatever their names: they are found by table and column).
DO $do$
DECLARE
    fk record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'calls'::regclass
                   AND tgname = 'calls_system_check') THEN
        CREATE TRIGGER calls_system_check AFTER INSERT ON calls
            REFERENCING NEW TABLE AS calls_system_new
            FOR EACH STATEMENT EXECUTE FUNCTION calls_system_check();
        CREATE TRIGGER calls_key_update_check AFTER UPDATE OF system_id, id ON calls
            FOR EACH ROW WHEN (OLD.system_id IS DISTINCT FROM NEW.system_id OR OLD.id IS DISTINCT FROM NEW.id)
            EXECUTE FUNCTION calls_key_update_check();
        CREATE TRIGGER calls_delete_details AFTER DELETE ON calls
            REFERENCING OLD TABLE AS calls_deleted
            FOR EACH STATEMENT EXECUTE FUNCTION calls_delete_details();
        CREATE TRIGGER calls_truncate_details AFTER TRUNCATE ON calls
            FOR EACH STATEMENT EXECUTE FUNCTION calls_truncate_details();
        -- Disabled during `import-cdr --bulk` (cdr_bulk.DETAIL_CHECKS), which checks once at the end.
        CREATE TRIGGER call_segments_call_check AFTER INSERT ON call_segments
            REFERENCING NEW TABLE AS calls_detail_new
            FOR EACH STATEMENT EXECUTE FUNCTION calls_detail_check();
        CREATE TRIGGER call_segments_call_update_check AFTER UPDATE OF call_pk ON call_segments
            FOR EACH ROW WHEN (OLD.call_pk IS DISTINCT FROM NEW.call_pk)
            EXECUTE FUNCTION calls_detail_update_check();
        CREATE TRIGGER call_ring_attempts_call_check AFTER INSERT ON call_ring_attempts
            REFERENCING NEW TABLE AS calls_detail_new
            FOR EACH STATEMENT EXECUTE FUNCTION calls_detail_check();
        CREATE TRIGGER call_ring_attempts_call_update_check AFTER UPDATE OF call_pk ON call_ring_attempts
            FOR EACH ROW WHEN (OLD.call_pk IS DISTINCT FROM NEW.call_pk)
            EXECUTE FUNCTION calls_detail_update_check();
        CREATE TRIGGER telephone_systems_calls_check AFTER DELETE OR UPDATE OF id ON telephone_systems
            FOR EACH ROW EXECUTE FUNCTION telephone_systems_calls_check();
        CREATE TRIGGER telephone_systems_truncate_calls AFTER TRUNCATE ON telephone_systems
            FOR EACH STATEMENT EXECUTE FUNCTION telephone_systems_truncate_calls();
    END IF;
    FOR fk IN SELECT conrelid::regclass::text AS table_name, conname FROM pg_constraint
              WHERE contype = 'f'
                AND ((conrelid = 'calls'::regclass AND confrelid = 'telephone_systems'::regclass)
                     OR (conrelid IN ('call_segments'::regclass, 'call_ring_attempts'::regclass)
                         AND confrelid = 'calls'::regclass))
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', fk.table_name, fk.conname);
    END LOOP;
END
$do$;

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
INSERT INTO schema_version (singleton, version) VALUES (true, 4)
    ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, applied_at = now()
    WHERE schema_version.version < EXCLUDED.version;
