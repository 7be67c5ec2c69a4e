-- Escalation policies, response targets, contact methods and notification rules, the durable
-- job queue, notifications with their delivery state, one-time action links, and breaches.

CREATE TABLE escalation_policies (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    team_id    INTEGER NOT NULL REFERENCES teams (id) ON DELETE RESTRICT,
    repeat     INTEGER NOT NULL DEFAULT 0 CHECK (repeat BETWEEN 0 AND 20),
    -- JSON: [{"delay_minutes", "min_severity", "targets": [{"type": "user"|"schedule", "id"}]}]
    levels     TEXT    NOT NULL,
    -- SEV3/SEV4 normally wait for each person's working hours; true pages them at any hour.
    low_severity_any_time BOOLEAN NOT NULL DEFAULT FALSE,
    version    INTEGER NOT NULL DEFAULT 1,
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);

-- Who and what each policy pages, mirrored from `levels` for lookups and integrity.
CREATE TABLE escalation_policy_targets (
    policy_id   INTEGER NOT NULL REFERENCES escalation_policies (id) ON DELETE CASCADE,
    user_id     INTEGER REFERENCES users (id) ON DELETE RESTRICT,
    schedule_id INTEGER REFERENCES schedules (id) ON DELETE RESTRICT,
    CHECK ((user_id IS NULL) <> (schedule_id IS NULL))
);
CREATE INDEX escalation_policy_targets_policy ON escalation_policy_targets (policy_id);
CREATE INDEX escalation_policy_targets_user ON escalation_policy_targets (user_id);
CREATE INDEX escalation_policy_targets_schedule ON escalation_policy_targets (schedule_id);

ALTER TABLE services ADD COLUMN escalation_policy_id INTEGER REFERENCES escalation_policies (id) ON DELETE SET NULL;
-- JSON: {"SEV1": {"acknowledge_minutes": 5, "resolve_minutes": 60}, …}
ALTER TABLE services ADD COLUMN response_targets TEXT NOT NULL DEFAULT '{}';

-- Working hours in the person's own zone, and how long before a shift they hear of it.
ALTER TABLE users ADD COLUMN work_days TEXT NOT NULL DEFAULT 'mon,tue,wed,thu,fri';
ALTER TABLE users ADD COLUMN work_start TEXT NOT NULL DEFAULT '09:00';
ALTER TABLE users ADD COLUMN work_end TEXT NOT NULL DEFAULT '18:00';
ALTER TABLE users ADD COLUMN handoff_lead_minutes INTEGER NOT NULL DEFAULT 60;

CREATE TABLE contact_methods (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT    NOT NULL CHECK (kind IN ('email', 'webhook', 'slack')),
    address     TEXT    NOT NULL,
    label       TEXT    NOT NULL DEFAULT '',
    verified_at TEXT,
    created_at  TEXT    NOT NULL,
    UNIQUE (user_id, kind, address)
);

-- "Contact method M, delay_minutes after the page, if still unacknowledged."
CREATE TABLE notification_rules (
    id                INTEGER PRIMARY KEY,
    user_id           INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    contact_method_id INTEGER NOT NULL REFERENCES contact_methods (id) ON DELETE CASCADE,
    delay_minutes     INTEGER NOT NULL CHECK (delay_minutes BETWEEN 0 AND 1440),
    created_at        TEXT    NOT NULL,
    UNIQUE (contact_method_id, delay_minutes)
);
CREATE INDEX notification_rules_user ON notification_rules (user_id);

-- Work due now or later. A job is claimed by setting locked_by/locked_until (a lease); a
-- replica that dies leaves the lease to expire and another takes the job. dedup_key makes
-- enqueueing the same work twice a no-op.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    kind         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    run_at       TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    locked_by    TEXT,
    locked_until TEXT,
    last_error   TEXT,
    dedup_key    TEXT UNIQUE,
    created_at   TEXT    NOT NULL,
    finished_at  TEXT
);
CREATE INDEX jobs_due ON jobs (run_at) WHERE finished_at IS NULL;

-- Every message to a person or channel, with its delivery state. idempotency_key names the
-- page (incident, escalation epoch, level, repeat, person, contact method, rule), so one page
-- is recorded, and sent, once.
CREATE TABLE notifications (
    id                INTEGER PRIMARY KEY,
    idempotency_key   TEXT    NOT NULL UNIQUE,
    incident_id       INTEGER REFERENCES incidents (id) ON DELETE CASCADE,
    user_id           INTEGER REFERENCES users (id) ON DELETE SET NULL,
    contact_method_id INTEGER REFERENCES contact_methods (id) ON DELETE SET NULL,
    purpose           TEXT    NOT NULL CHECK (purpose IN ('page', 'handoff', 'reminder', 'test', 'breach')),
    channel           TEXT    NOT NULL CHECK (channel IN ('email', 'webhook', 'slack')),
    address           TEXT    NOT NULL,
    subject           TEXT    NOT NULL,
    level             INTEGER,
    repeat_no         INTEGER,
    state             TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed', 'cancelled')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    created_at        TEXT    NOT NULL,
    due_at            TEXT    NOT NULL,
    sent_at           TEXT
);
CREATE INDEX notifications_incident ON notifications (incident_id, id);
CREATE INDEX notifications_user ON notifications (user_id, created_at);

-- Where each incident's escalation stands; epoch changes on reopen so older jobs stand down.
CREATE TABLE incident_escalations (
    incident_id INTEGER PRIMARY KEY REFERENCES incidents (id) ON DELETE CASCADE,
    policy_id   INTEGER REFERENCES escalation_policies (id) ON DELETE SET NULL,
    epoch       INTEGER NOT NULL,
    level       INTEGER NOT NULL,
    repeat_no   INTEGER NOT NULL,
    updated_at  TEXT    NOT NULL
);

-- Acknowledge/resolve links in emails: random, stored hashed, single use, expiring.
CREATE TABLE action_tokens (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT    NOT NULL UNIQUE,
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    user_id     INTEGER REFERENCES users (id) ON DELETE CASCADE,
    action      TEXT    NOT NULL CHECK (action IN ('acknowledge', 'resolve')),
    expires_at  TEXT    NOT NULL,
    used_at     TEXT,
    created_at  TEXT    NOT NULL
);

CREATE TABLE response_breaches (
    id             INTEGER PRIMARY KEY,
    incident_id    INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    service_id     INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    kind           TEXT    NOT NULL CHECK (kind IN ('acknowledge', 'resolve')),
    target_minutes INTEGER NOT NULL,
    breached_at    TEXT    NOT NULL,
    UNIQUE (incident_id, service_id, kind)
);
CREATE INDEX response_breaches_service ON response_breaches (service_id, breached_at);
