-- Contract 0.2.0's set-level: an action may change a held level in place. SQLite cannot
-- change a CHECK constraint, so the actions table is rebuilt with the wider one, its rows
-- copied as they are.
CREATE TABLE actions_v7 (
    run_id           TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    idx              INTEGER NOT NULL CHECK (idx >= 0),
    idempotency_key  TEXT NOT NULL,
    op               TEXT NOT NULL CHECK (op IN ('grant', 'revoke', 'set-level')),
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
INSERT INTO actions_v7 (run_id, idx, idempotency_key, op, person, app, kind, resource,
                        subject, level, reason, outcome, attempts, detail, finished_at)
    SELECT run_id, idx, idempotency_key, op, person, app, kind, resource, subject, level,
           reason, outcome, attempts, detail, finished_at
    FROM actions;
DROP TABLE actions;
ALTER TABLE actions_v7 RENAME TO actions;
