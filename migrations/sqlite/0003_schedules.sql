-- On-call schedules, their overrides, calendar feeds and the notices overrides cause.
-- A schedule's layers are one JSON document (CONTRACT.md's layer shape): a schedule is
-- validated and saved whole, with a version for concurrent edits. schedule_participants
-- mirrors who appears in the layers, for "my schedules" lookups and referential integrity.

CREATE TABLE schedules (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    time_zone  TEXT    NOT NULL,
    team_id    INTEGER NOT NULL REFERENCES teams (id) ON DELETE RESTRICT,
    layers     TEXT    NOT NULL,
    version    INTEGER NOT NULL DEFAULT 1,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);
CREATE INDEX schedules_team ON schedules (team_id);

CREATE TABLE schedule_participants (
    schedule_id INTEGER NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    PRIMARY KEY (schedule_id, user_id)
);
CREATE INDEX schedule_participants_user ON schedule_participants (user_id);

CREATE TABLE schedule_overrides (
    id          INTEGER PRIMARY KEY,
    schedule_id INTEGER NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    start_at    TEXT    NOT NULL,
    end_at      TEXT    NOT NULL,
    created_by  INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at  TEXT    NOT NULL,
    CHECK (end_at > start_at)
);
CREATE INDEX schedule_overrides_range ON schedule_overrides (schedule_id, end_at);
CREATE INDEX schedule_overrides_user ON schedule_overrides (user_id, end_at);

CREATE TABLE calendar_feeds (
    id          INTEGER PRIMARY KEY,
    secret_hash TEXT    NOT NULL UNIQUE,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    schedule_id INTEGER REFERENCES schedules (id) ON DELETE CASCADE,
    created_at  TEXT    NOT NULL,
    last_used_at TEXT,
    revoked_at  TEXT
);
CREATE INDEX calendar_feeds_user ON calendar_feeds (user_id);

-- People an override moved on or off call, waiting for the notification engine to tell them.
CREATE TABLE schedule_notices (
    id          INTEGER PRIMARY KEY,
    schedule_id INTEGER NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL CHECK (kind IN ('on_call', 'off_call')),
    start_at    TEXT    NOT NULL,
    end_at      TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    sent_at     TEXT
);
CREATE INDEX schedule_notices_unsent ON schedule_notices (sent_at, created_at);
