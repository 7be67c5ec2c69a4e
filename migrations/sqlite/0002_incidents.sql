-- Services, incidents, their services, responders and timelines.

CREATE TABLE services (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    description    TEXT NOT NULL DEFAULT '',
    kind           TEXT NOT NULL CHECK (kind IN ('llm-inference', 'vector-db', 'feature-store', 'agent-framework', 'data-pipeline', 'other')),
    workload_class TEXT NOT NULL CHECK (workload_class IN ('real-time', 'batch', 'on-demand')),
    team_id        INTEGER REFERENCES teams (id) ON DELETE SET NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX services_team ON services (team_id);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('incident_number', 0);

CREATE TABLE incidents (
    id              INTEGER PRIMARY KEY,
    number          INTEGER NOT NULL UNIQUE,
    title           TEXT    NOT NULL,
    description     TEXT    NOT NULL DEFAULT '',
    description_html TEXT   NOT NULL DEFAULT '',
    severity        TEXT    NOT NULL CHECK (severity IN ('SEV1', 'SEV2', 'SEV3', 'SEV4')),
    status          TEXT    NOT NULL CHECK (status IN ('triggered', 'acknowledged', 'resolved')),
    phase           TEXT    CHECK (phase IN ('investigating', 'identified', 'monitoring', 'resolved')),
    commander_id    INTEGER REFERENCES users (id) ON DELETE SET NULL,
    comms_lead_id   INTEGER REFERENCES users (id) ON DELETE SET NULL,
    scribe_id       INTEGER REFERENCES users (id) ON DELETE SET NULL,
    declared_by     INTEGER REFERENCES users (id) ON DELETE SET NULL,
    triggered_at    TEXT    NOT NULL,
    acknowledged_at TEXT,
    resolved_at     TEXT,
    version         INTEGER NOT NULL DEFAULT 1,
    updated_at      TEXT    NOT NULL
);
CREATE INDEX incidents_open_recent ON incidents (status, triggered_at);
CREATE INDEX incidents_triggered ON incidents (triggered_at);
CREATE INDEX incidents_severity ON incidents (severity, triggered_at);

CREATE TABLE incident_services (
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    service_id  INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    PRIMARY KEY (incident_id, service_id)
);
CREATE INDEX incident_services_service ON incident_services (service_id, incident_id);

CREATE TABLE incident_responders (
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at    TEXT    NOT NULL,
    PRIMARY KEY (incident_id, user_id)
);

CREATE TABLE timeline (
    id            INTEGER PRIMARY KEY,
    incident_id   INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at            TEXT    NOT NULL,
    actor_user_id INTEGER REFERENCES users (id) ON DELETE SET NULL,
    actor         TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    body          TEXT    NOT NULL DEFAULT '',
    body_html     TEXT    NOT NULL DEFAULT '',
    phase         TEXT
);
CREATE INDEX timeline_incident ON timeline (incident_id, id);
