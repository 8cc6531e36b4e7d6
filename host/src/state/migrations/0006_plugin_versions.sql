-- Plugin versions each app has been given. The latest `accepted` one is what a changed
-- file is compared with (upgrade review); a `pending` one widened what the plugin may do
-- and waits for `portcullis plugin accept APP`. `profile` is what a reviewer judges
-- (contract, imports, kinds and levels, signer); `previous` the accepted sha256 it was
-- compared with; `widened` what it adds.
CREATE TABLE plugin_versions (
    app         TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    profile     TEXT NOT NULL CHECK (json_valid(profile)),
    status      TEXT NOT NULL CHECK (status IN ('accepted', 'pending')),
    previous    TEXT,
    widened     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(widened)),
    seen_at     TEXT NOT NULL,
    decided_at  TEXT,
    decided_by  TEXT,
    PRIMARY KEY (app, sha256)
);
