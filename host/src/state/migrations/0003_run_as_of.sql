-- Runs record the wall-clock time they ran (started_at, finished_at) and, apart from it,
-- the time their plan was made for (`--at`), which earlier versions stored as started_at.
ALTER TABLE runs ADD COLUMN as_of TEXT;
UPDATE runs SET as_of = started_at WHERE policy_hash IS NOT NULL;
