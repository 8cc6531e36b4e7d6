-- HR events received by `portcullis serve` (POST /v1/hr-events), stored before the
-- delivery is answered. An event id is accepted once: a repeated delivery finds its row.
-- `entry` is the event as the HR events file format writes it (one element of "events").
CREATE TABLE hr_events (
    id           TEXT PRIMARY KEY NOT NULL,
    person       TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    -- Who delivered it (the API token's name).
    source       TEXT NOT NULL,
    entry        TEXT NOT NULL CHECK (json_valid(entry))
);

CREATE INDEX hr_events_by_arrival ON hr_events (received_at, id);
