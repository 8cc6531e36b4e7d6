-- Actions that set out and have not been settled: written before an action's first write
-- call, deleted once its outcome is in state. A row left behind means the run was cut off
-- (crash, kill, power loss); the next run reads the action back before anything else.
-- `spec` is the engine's action (op, app, subject, entitlement, trigger); `change` the
-- plan change it carries out (null for a hand-written actions file).
CREATE TABLE intents (
    idempotency_key TEXT PRIMARY KEY NOT NULL,
    run_id          TEXT NOT NULL,
    idx             INTEGER NOT NULL,
    person          TEXT,
    spec            TEXT NOT NULL CHECK (json_valid(spec)),
    change          TEXT CHECK (change IS NULL OR json_valid(change)),
    policy_hash     TEXT,
    as_of           TEXT NOT NULL,
    started_at      TEXT NOT NULL
);
