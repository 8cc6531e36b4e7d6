-- The job queue and the shared rate limits of a pool of workers (host/src/queue).

-- One row per action of a queued run. A worker claims available rows (and running rows
-- whose lease ran out) with FOR UPDATE SKIP LOCKED, extends its lease by heartbeat, and
-- completes the row with the action's result. `attempt` counts claims: more than one
-- means the action was taken over and is read back before anything is written.
CREATE TABLE queue_jobs (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id        TEXT COLLATE "C" NOT NULL,
    -- 1 or 2: a run's coordinator enqueues phase 2 once phase 1 is complete.
    phase         INTEGER NOT NULL CHECK (phase IN (1, 2)),
    -- The action's index among the run's recorded actions.
    idx           INTEGER NOT NULL CHECK (idx >= 0),
    app           TEXT COLLATE "C" NOT NULL,
    -- Read-modify-write kinds: actions with the same key run one at a time.
    serial_key    TEXT COLLATE "C",
    payload       JSONB NOT NULL,
    state         TEXT NOT NULL DEFAULT 'available'
                  CHECK (state IN ('available', 'running', 'completed')),
    attempt       INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    worker        TEXT,
    -- The worker that held it before a takeover.
    taken_from    TEXT,
    lease_until   TIMESTAMPTZ,
    run_after     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    claimed_at    TIMESTAMPTZ,
    completed_at  TIMESTAMPTZ,
    last_error    TEXT,
    result        JSONB,
    UNIQUE (run_id, idx),
    CHECK (state <> 'running' OR (worker IS NOT NULL AND lease_until IS NOT NULL)),
    CHECK (state <> 'completed' OR result IS NOT NULL)
);

-- Claims scan only rows not completed, oldest first.
CREATE INDEX queue_jobs_open ON queue_jobs (id) WHERE state <> 'completed';
-- A coordinator's progress and results.
CREATE INDEX queue_jobs_by_run ON queue_jobs (run_id, phase, state);

-- GCRA buckets, one per app and configured period: `tat_us` is the theoretical arrival
-- time in microseconds since the epoch, on the database's clock (one clock for every
-- worker).
CREATE TABLE rate_buckets (
    app     TEXT COLLATE "C" NOT NULL,
    period  TEXT NOT NULL,
    tat_us  BIGINT NOT NULL,
    PRIMARY KEY (app, period)
);

-- Server-supplied waits (Retry-After, reset headers): no request to the app before.
CREATE TABLE rate_blocks (
    app       TEXT COLLATE "C" PRIMARY KEY,
    until_us  BIGINT NOT NULL
);

-- Takes one token from every period of an app, all or none. Returns 0 when taken, else
-- the microseconds to wait before asking again. Rows are locked in the order given, and
-- every caller gives the app's periods in the same order, so callers cannot deadlock.
CREATE FUNCTION portcullis_take_token(p_app TEXT, p_periods TEXT[], p_interval_us BIGINT[],
                                      p_tolerance_us BIGINT[])
RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    now_us BIGINT := (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT;
    blocked BIGINT;
    tats BIGINT[] := '{}';
    tat BIGINT;
    wait_us BIGINT := 0;
    n INTEGER := coalesce(array_length(p_periods, 1), 0);
BEGIN
    SELECT until_us INTO blocked FROM rate_blocks WHERE app = p_app;
    IF blocked IS NOT NULL AND blocked > now_us THEN
        RETURN blocked - now_us;
    END IF;
    FOR i IN 1 .. n LOOP
        INSERT INTO rate_buckets (app, period, tat_us) VALUES (p_app, p_periods[i], now_us)
            ON CONFLICT (app, period) DO NOTHING;
        SELECT tat_us INTO tat FROM rate_buckets
            WHERE app = p_app AND period = p_periods[i] FOR UPDATE;
        tat := greatest(tat, now_us);
        tats := tats || tat;
        IF tat - now_us > p_tolerance_us[i] THEN
            wait_us := greatest(wait_us, tat - now_us - p_tolerance_us[i]);
        END IF;
    END LOOP;
    IF wait_us > 0 THEN
        RETURN wait_us;
    END IF;
    FOR i IN 1 .. n LOOP
        UPDATE rate_buckets SET tat_us = tats[i] + p_interval_us[i]
            WHERE app = p_app AND period = p_periods[i];
    END LOOP;
    RETURN 0;
END;
$$;

-- A server said: no requests to the app for `p_wait_us`. The later deadline wins.
CREATE FUNCTION portcullis_block(p_app TEXT, p_wait_us BIGINT)
RETURNS VOID LANGUAGE sql AS $$
    INSERT INTO rate_blocks (app, until_us)
    VALUES (p_app, (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT + p_wait_us)
    ON CONFLICT (app) DO UPDATE SET until_us = greatest(rate_blocks.until_us, EXCLUDED.until_us);
$$;
