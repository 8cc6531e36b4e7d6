-- How each (app, kind) was last listed: complete (every page read; absence means absent)
-- or partial (stopped part-way; its rows were merged into `observed`, nothing removed,
-- and no decision may rest on a grant's absence). Written with every listing.
CREATE TABLE observed_listings (
    app          TEXT NOT NULL,
    kind         TEXT NOT NULL,
    listed_at    TEXT NOT NULL,
    complete     INTEGER NOT NULL CHECK (complete IN (0, 1)),
    -- Why a partial listing stopped (the host's message); NULL when complete.
    reason       TEXT,
    PRIMARY KEY (app, kind)
);
