-- Portcullis state on PostgreSQL, schema version 1: the whole schema the SQLite backend
-- reached in its migrations 0001-0007 (host/src/state/migrations/), written natively. It
-- does not replay SQLite's history; later versions are appended as 0002_*.sql, ... and
-- are never edited once released.
--
-- Conventions:
--   * Times are timestamptz (UTC, to the microsecond, which is what the StateStore trait
--     promises).
--   * JSON values are jsonb; lists of names are text[].
--   * A grant's target is three columns (app, kind, resource), never one joined string.
--   * Status columns hold the lowercase names of the Rust enums, checked here so that a
--     value the code cannot read back is never stored.
--   * Every text column that is part of a key or of a listing order is COLLATE "C": rows
--     are listed byte-wise (Rust's String order, SQLite's BINARY), whatever collation the
--     database was created with, and the keys' indexes serve those orders.
--   * Primary keys carry the upsert semantics of the store's methods.
--
-- The version applied is recorded in portcullis_schema, which the store creates before
-- running this file (host/src/state/pg/mod.rs).

-- People as of the last plan (the directory plus HR events applied then). Upserted by id.
CREATE TABLE people (
    id          text COLLATE "C" PRIMARY KEY,
    name        text,
    attributes  jsonb NOT NULL,
    accounts    jsonb NOT NULL CHECK (jsonb_typeof(accounts) = 'object'),  -- {"app": "subject"}
    status      text NOT NULL CHECK (status IN ('active', 'terminated')),
    updated_at  timestamptz NOT NULL
);

-- What the policy wanted at the last evaluation: one snapshot, replaced as a whole.
CREATE TABLE desired (
    person       text COLLATE "C" NOT NULL,
    app          text COLLATE "C" NOT NULL,
    kind         text COLLATE "C" NOT NULL,
    resource     text COLLATE "C" NOT NULL,
    level        text,
    rules        text[] NOT NULL,                                -- sorted
    sensitive    boolean NOT NULL,
    policy_hash  text NOT NULL,
    computed_at  timestamptz NOT NULL,
    PRIMARY KEY (person, app, kind, resource)
);

-- Grants Portcullis made (verified, or pending such as an invitation): the only grants it
-- may ever revoke. Upserted by (person, target).
CREATE TABLE managed (
    person       text COLLATE "C" NOT NULL,
    app          text COLLATE "C" NOT NULL,
    kind         text COLLATE "C" NOT NULL,
    resource     text COLLATE "C" NOT NULL,
    subject      text NOT NULL,                                  -- the app's id for the person
    level        text,
    rules        text[] NOT NULL,
    status       text NOT NULL CHECK (status IN ('active', 'pending')),
    granted_at   timestamptz NOT NULL,
    expires_at   timestamptz,                                    -- time-bound grants only
    policy_hash  text NOT NULL,
    run_id       text NOT NULL,
    PRIMARY KEY (person, app, kind, resource)
);

-- Grants the policy still wants but that must not be granted again (expired, or revoked
-- for going unused). Upserted by (person, target).
CREATE TABLE holds (
    person    text COLLATE "C" NOT NULL,
    app       text COLLATE "C" NOT NULL,
    kind      text COLLATE "C" NOT NULL,
    resource  text COLLATE "C" NOT NULL,
    reason    text NOT NULL CHECK (reason IN ('expired', 'dormant')),
    since     timestamptz NOT NULL,
    detail    text NOT NULL,
    PRIMARY KEY (person, app, kind, resource)
);

-- What the apps reported, per (app, kind): a complete listing replaces that app and kind's
-- rows as a whole; the key's (app, kind) prefix serves that replacement's delete.
CREATE TABLE observed (
    app           text COLLATE "C" NOT NULL,
    kind          text COLLATE "C" NOT NULL,
    resource      text COLLATE "C" NOT NULL,
    subject       text COLLATE "C" NOT NULL,
    level         text,
    pending       boolean NOT NULL,
    last_used_at  timestamptz,
    observed_at   timestamptz NOT NULL,
    PRIMARY KEY (app, kind, resource, subject)
);

-- How each (app, kind) was last listed: complete (absence means absent) or partial (merged
-- without removing anything; reason says why it stopped).
CREATE TABLE observed_listings (
    app          text COLLATE "C" NOT NULL,
    kind         text COLLATE "C" NOT NULL,
    listed_at    timestamptz NOT NULL,
    complete     boolean NOT NULL,
    reason       text,
    PRIMARY KEY (app, kind)
);

-- When each grant was last used (activity exports); imports only move it forward.
CREATE TABLE usage (
    app           text COLLATE "C" NOT NULL,
    kind          text COLLATE "C" NOT NULL,
    resource      text COLLATE "C" NOT NULL,
    subject       text COLLATE "C" NOT NULL,
    last_used_at  timestamptz NOT NULL,
    PRIMARY KEY (app, kind, resource, subject)
);

-- HR events received by `portcullis serve`, stored before the delivery is answered; an
-- event id is accepted once.
CREATE TABLE hr_events (
    id           text COLLATE "C" PRIMARY KEY,
    person       text NOT NULL,
    received_at  timestamptz NOT NULL,
    source       text NOT NULL,                                  -- the API token's name
    entry        jsonb NOT NULL
);

CREATE INDEX hr_events_by_arrival ON hr_events (received_at, id);

-- One row per run that changes apps: begun before its first action, finished with a
-- summary. A run without finished_at was interrupted. as_of is the time its plan was made
-- for (--at); NULL for a hand-written actions file.
CREATE TABLE runs (
    id           text COLLATE "C" PRIMARY KEY,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    policy_hash  text,
    summary      jsonb NOT NULL,
    as_of        timestamptz
);

CREATE INDEX runs_by_start ON runs (started_at, id);

-- Every action of every run with its outcome. Upserted by (run_id, idx).
CREATE TABLE actions (
    run_id           text COLLATE "C" NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx              bigint NOT NULL CHECK (idx BETWEEN 0 AND 4294967295),
    idempotency_key  text NOT NULL,
    op               text NOT NULL CHECK (op IN ('grant', 'revoke', 'set-level')),
    person           text,
    app              text NOT NULL,
    kind             text NOT NULL,
    resource         text NOT NULL,
    subject          text NOT NULL,
    level            text,
    reason           text NOT NULL,
    outcome          text NOT NULL,
    attempts         bigint NOT NULL CHECK (attempts BETWEEN 0 AND 4294967295),
    detail           jsonb NOT NULL,
    finished_at      timestamptz NOT NULL,
    PRIMARY KEY (run_id, idx)
);

-- Actions that set out and are not settled: written before an action's first write call,
-- deleted once its outcome is in state. A row left behind means the run was cut off.
CREATE TABLE intents (
    idempotency_key  text COLLATE "C" PRIMARY KEY,
    run_id           text COLLATE "C" NOT NULL,
    idx              bigint NOT NULL CHECK (idx BETWEEN 0 AND 4294967295),
    person           text,
    spec             jsonb NOT NULL,
    change           jsonb,
    policy_hash      text,
    as_of            timestamptz NOT NULL,
    started_at       timestamptz NOT NULL
);

CREATE INDEX intents_by_start ON intents (started_at, run_id, idx);

-- Plugin versions each app has been given (upgrade review).
CREATE TABLE plugin_versions (
    app         text COLLATE "C" NOT NULL,
    sha256      text COLLATE "C" NOT NULL,
    profile     jsonb NOT NULL,
    status      text NOT NULL CHECK (status IN ('accepted', 'pending')),
    previous    text,
    widened     text[] NOT NULL DEFAULT '{}',
    seen_at     timestamptz NOT NULL,
    decided_at  timestamptz,
    decided_by  text,
    PRIMARY KEY (app, sha256)
);

-- Requests for a human decision. Ids come from an identity and are never reused (a failed
-- insert may leave a gap). Lifecycle: pending -> approved -> done, or pending -> denied.
CREATE TABLE approvals (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person           text COLLATE "C" NOT NULL,
    op               text COLLATE "C" NOT NULL CHECK (op IN ('grant', 'revoke')),
    app              text COLLATE "C" NOT NULL,
    kind             text COLLATE "C" NOT NULL,
    resource         text COLLATE "C" NOT NULL,
    subject          text NOT NULL,
    level            text COLLATE "C",
    rules            text[] NOT NULL,
    why              text NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'done')),
    requested_at     timestamptz NOT NULL,
    decided_by       text,
    decision_reason  text,
    decided_at       timestamptz,
    policy_hash      text NOT NULL
);

-- At most one open (pending or approved) request per (person, op, target, level): what
-- makes request_approval idempotent, even with two planners racing (its insert names this
-- index in ON CONFLICT). A missing level counts as ''.
CREATE UNIQUE INDEX approvals_one_open
    ON approvals (person, op, app, kind, resource, (COALESCE(level, '')))
    WHERE status IN ('pending', 'approved');

-- approvals(Some(status)) lists one status in (person, target) order.
CREATE INDEX approvals_by_status ON approvals (status, person, app, kind, resource, op, id);

-- Who holds the run lock (a session advisory lock, host/src/state/pg/lock.rs), so that a
-- refused run can name the holder. A row is only believed while its backend holds the
-- lock; a crashed holder's row is simply overwritten by the next one.
CREATE TABLE run_lock_holders (
    backend_pid  integer PRIMARY KEY,
    holder       text NOT NULL,
    since        timestamptz NOT NULL DEFAULT now()
);
