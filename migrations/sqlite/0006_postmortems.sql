-- Postmortems: one blameless review per incident, its reviewers, its history, its action items.

CREATE TABLE postmortems (
    id           INTEGER PRIMARY KEY,
    incident_id  INTEGER NOT NULL UNIQUE REFERENCES incidents (id) ON DELETE CASCADE,
    owner_id     INTEGER REFERENCES users (id) ON DELETE SET NULL,
    status       TEXT    NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'in_review', 'published')),
    title        TEXT    NOT NULL,
    -- JSON: {"summary", "customer_impact", "root_cause", "detection", "resolution", "went_well",
    --        "went_badly", "lucky", "lessons", "ai_model_version", "ai_eval_before", "ai_eval_after"} (Markdown)
    sections     TEXT    NOT NULL,
    -- JSON: [{"at", "text", "kept"}], imported from the incident's timeline, then edited
    timeline     TEXT    NOT NULL,
    version      INTEGER NOT NULL DEFAULT 1,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    published_at TEXT
);
CREATE INDEX postmortems_status ON postmortems (status, id);

CREATE TABLE postmortem_reviewers (
    postmortem_id INTEGER NOT NULL REFERENCES postmortems (id) ON DELETE CASCADE,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    decision      TEXT    NOT NULL DEFAULT 'pending' CHECK (decision IN ('pending', 'approved', 'changes_requested')),
    comment       TEXT    NOT NULL DEFAULT '',
    decided_at    TEXT,
    PRIMARY KEY (postmortem_id, user_id)
);

CREATE TABLE postmortem_history (
    id            INTEGER PRIMARY KEY,
    postmortem_id INTEGER NOT NULL REFERENCES postmortems (id) ON DELETE CASCADE,
    at            TEXT    NOT NULL,
    actor_user_id INTEGER REFERENCES users (id) ON DELETE SET NULL,
    actor         TEXT    NOT NULL,
    action        TEXT    NOT NULL,
    comment       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX postmortem_history_postmortem ON postmortem_history (postmortem_id, id);

CREATE TABLE action_items (
    id            INTEGER PRIMARY KEY,
    postmortem_id INTEGER NOT NULL REFERENCES postmortems (id) ON DELETE CASCADE,
    title         TEXT    NOT NULL,
    owner_id      INTEGER REFERENCES users (id) ON DELETE SET NULL,
    -- a calendar date, 'YYYY-MM-DD'
    due_date      TEXT,
    priority      TEXT    NOT NULL DEFAULT 'medium' CHECK (priority IN ('high', 'medium', 'low')),
    status        TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'done', 'wont_do')),
    tracker_url   TEXT,
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    reminded_at   TEXT
);
CREATE INDEX action_items_postmortem ON action_items (postmortem_id, id);
CREATE INDEX action_items_due ON action_items (status, due_date);
CREATE INDEX action_items_owner ON action_items (owner_id);
