-- Portcullis state, schema version 1.
--
-- One table per record type of host/src/state/mod.rs. Conventions, chosen so that the same
-- schema carries over to PostgreSQL:
--   * Timestamps are TEXT in RFC 3339, UTC, fixed width with microseconds
--     (2027-03-01T09:30:00.000000Z). Fixed width makes text order equal time order, so
--     comparisons such as "keep the latest last_used_at" can be done in SQL.
--   * JSON values (attributes, accounts, rules, summary, detail) are TEXT checked with
--     json_valid(); PostgreSQL would use jsonb.
--   * A grant's target is three columns (app, kind, resource), never one joined string.
--   * Status columns hold the lowercase names of the Rust enums, checked here so that a
--     value the code cannot read back is never stored.
--   * Rows are listed in (person, app, kind, resource) order, byte-wise (SQLite's BINARY
--     collation, the same order as Rust's String); PostgreSQL would need COLLATE "C".
--   * Primary keys carry the upsert semantics of the store's methods; the comments on each
--     table say which.

-- People as of the last plan: the directory plus HR events applied at that time. Kept so
-- that later commands (drift, dormant, approve) can name people without re-reading the
-- HR files, and so that terminated people stay known until their grants are revoked.
-- Upserted by id.
CREATE TABLE people (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT,
    attributes  TEXT NOT NULL CHECK (json_valid(attributes)),
    accounts    TEXT NOT NULL CHECK (json_valid(accounts)),  -- {"app": "subject id"}
    status      TEXT NOT NULL CHECK (status IN ('active', 'terminated')),
    updated_at  TEXT NOT NULL
);

-- What the policy wanted at the last evaluation: one snapshot, replaced as a whole, so the
-- rows always come from a single policy version (policy_hash) at a single time.
CREATE TABLE desired (
    person       TEXT NOT NULL,
    app          TEXT NOT NULL,
    kind         TEXT NOT NULL,
    resource     TEXT NOT NULL,
    level        TEXT,
    rules        TEXT NOT NULL CHECK (json_valid(rules)),    -- ["rule-name", ...], sorted
    sensitive    INTEGER NOT NULL CHECK (sensitive IN (0, 1)),
    policy_hash  TEXT NOT NULL,
    computed_at  TEXT NOT NULL,
    PRIMARY KEY (person, app, kind, resource)
);

-- Grants Portcullis made (verified, or pending such as an invitation). The only grants it
-- may ever revoke: anything else found in an app was granted by someone else and is
-- reported as drift, never touched. Upserted by (person, target).
CREATE TABLE managed (
    person       TEXT NOT NULL,
    app          TEXT NOT NULL,
    kind         TEXT NOT NULL,
    resource     TEXT NOT NULL,
    subject      TEXT NOT NULL,                               -- the app's id for the person
    level        TEXT,
    rules        TEXT NOT NULL CHECK (json_valid(rules)),
    status       TEXT NOT NULL CHECK (status IN ('active', 'pending')),
    granted_at   TEXT NOT NULL,
    expires_at   TEXT,                                        -- time-bound grants only
    policy_hash  TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    PRIMARY KEY (person, app, kind, resource)
);

-- Grants the policy still wants but that must not be granted again: a time-bound grant
-- that expired, or a grant revoked because it went unused. Without a hold the next plan
-- would simply re-grant it. Cleared when the policy stops wanting the grant or an operator
-- lifts it. Upserted by (person, target).
CREATE TABLE holds (
    person    TEXT NOT NULL,
    app       TEXT NOT NULL,
    kind      TEXT NOT NULL,
    resource  TEXT NOT NULL,
    reason    TEXT NOT NULL CHECK (reason IN ('expired', 'dormant')),
    since     TEXT NOT NULL,
    detail    TEXT NOT NULL,
    PRIMARY KEY (person, app, kind, resource)
);

-- What the apps reported at the last discovery, per (app, kind): each listing replaces
-- that app+kind's rows as a whole, so grants removed outside Portcullis disappear too.
-- The primary key's (app, kind) prefix also serves that replacement's delete.
CREATE TABLE observed (
    app           TEXT NOT NULL,
    kind          TEXT NOT NULL,
    resource      TEXT NOT NULL,
    subject       TEXT NOT NULL,
    level         TEXT,
    pending       INTEGER NOT NULL CHECK (pending IN (0, 1)),
    last_used_at  TEXT,
    observed_at   TEXT NOT NULL,
    PRIMARY KEY (app, kind, resource, subject)
);

-- When each grant was last used, from app activity exports, for dormancy. Imports only
-- ever move last_used_at forward, so re-importing an old export changes nothing.
CREATE TABLE usage (
    app           TEXT NOT NULL,
    kind          TEXT NOT NULL,
    resource      TEXT NOT NULL,
    subject       TEXT NOT NULL,
    last_used_at  TEXT NOT NULL,
    PRIMARY KEY (app, kind, resource, subject)
);

-- One row per `portcullis apply` run: begun before the first action, finished with a
-- summary. A run without finished_at was interrupted.
CREATE TABLE runs (
    id           TEXT PRIMARY KEY NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    policy_hash  TEXT,
    summary      TEXT NOT NULL CHECK (json_valid(summary))
);

-- runs() lists runs in start order.
CREATE INDEX runs_by_start ON runs (started_at, id);

-- Every action of every run with its outcome: the durable audit of what Portcullis did.
-- Upserted by (run_id, idx) so an action's record can be updated as it progresses.
CREATE TABLE actions (
    run_id           TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx              INTEGER NOT NULL CHECK (idx >= 0),
    idempotency_key  TEXT NOT NULL,
    op               TEXT NOT NULL CHECK (op IN ('grant', 'revoke')),
    person           TEXT,
    app              TEXT NOT NULL,
    kind             TEXT NOT NULL,
    resource         TEXT NOT NULL,
    subject          TEXT NOT NULL,
    level            TEXT,
    reason           TEXT NOT NULL,
    outcome          TEXT NOT NULL,
    attempts         INTEGER NOT NULL CHECK (attempts >= 0),
    detail           TEXT NOT NULL CHECK (json_valid(detail)),
    finished_at      TEXT NOT NULL,
    PRIMARY KEY (run_id, idx)
);

-- Requests for a human decision before a sensitive grant or a dormancy revoke. Ids are
-- never reused (AUTOINCREMENT), so "approval 7" means the same request forever.
-- Lifecycle: pending -> approved -> done, or pending -> denied.
CREATE TABLE approvals (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    person           TEXT NOT NULL,
    op               TEXT NOT NULL CHECK (op IN ('grant', 'revoke')),
    app              TEXT NOT NULL,
    kind             TEXT NOT NULL,
    resource         TEXT NOT NULL,
    subject          TEXT NOT NULL,
    level            TEXT,
    rules            TEXT NOT NULL CHECK (json_valid(rules)),
    why              TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'done')),
    requested_at     TEXT NOT NULL,
    decided_by       TEXT,
    decision_reason  TEXT,
    decided_at       TEXT,
    policy_hash      TEXT NOT NULL
);

-- At most one open (pending or approved) request per (person, op, target, level): this is
-- what makes request_approval idempotent, even with two planners racing. It is also the
-- index request_approval looks the open request up by. A missing level counts as ''.
CREATE UNIQUE INDEX approvals_one_open
    ON approvals (person, op, app, kind, resource, COALESCE(level, ''))
    WHERE status IN ('pending', 'approved');

-- approvals(Some(status)) lists one status in (person, target) order.
CREATE INDEX approvals_by_status ON approvals (status, person, app, kind, resource, op, id);
