-- Alert ingestion: integrations on services (keys stored hashed), alerts keyed by
-- (integration, dedup key) with at most one open alert per key, and every event received.

CREATE TABLE integrations (
    id                 INTEGER PRIMARY KEY,
    service_id         INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    kind               TEXT    NOT NULL CHECK (kind IN ('events_v2', 'alertmanager', 'generic', 'heartbeat')),
    name               TEXT    NOT NULL,
    key_hash           TEXT    NOT NULL UNIQUE,
    key_prefix         TEXT    NOT NULL,
    heartbeat_interval_seconds INTEGER,
    last_check_in_at   TEXT,
    created_at         TEXT    NOT NULL,
    rotated_at         TEXT
);
CREATE INDEX integrations_service ON integrations (service_id);

-- How a service turns alerts into incidents.
ALTER TABLE services ADD COLUMN grouping_window_minutes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE services ADD COLUMN auto_resolve BOOLEAN NOT NULL DEFAULT TRUE;
-- JSON: {"critical": "SEV1", "error": "SEV2", "warning": "SEV3", "info": "SEV4"}; missing keys use those defaults.
ALTER TABLE services ADD COLUMN severity_map TEXT NOT NULL DEFAULT '{}';

CREATE TABLE alerts (
    id             INTEGER PRIMARY KEY,
    integration_id INTEGER NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    service_id     INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    dedup_key      TEXT    NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('triggered', 'acknowledged', 'resolved')),
    summary        TEXT    NOT NULL,
    source         TEXT,
    severity       TEXT    NOT NULL CHECK (severity IN ('critical', 'error', 'warning', 'info')),
    incident_id    INTEGER REFERENCES incidents (id) ON DELETE SET NULL,
    count          INTEGER NOT NULL DEFAULT 1,
    payload        TEXT    NOT NULL,
    first_seen_at  TEXT    NOT NULL,
    last_seen_at   TEXT    NOT NULL,
    resolved_at    TEXT
);
-- One open alert per key: a trigger on an open key updates it; after resolution the key opens anew.
CREATE UNIQUE INDEX alerts_open_key ON alerts (integration_id, dedup_key) WHERE status <> 'resolved';
CREATE INDEX alerts_incident ON alerts (incident_id);
CREATE INDEX alerts_service_seen ON alerts (service_id, last_seen_at);
CREATE INDEX alerts_status_seen ON alerts (status, last_seen_at);

CREATE TABLE alert_events (
    id       INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at       TEXT    NOT NULL,
    action   TEXT    NOT NULL CHECK (action IN ('trigger', 'acknowledge', 'resolve')),
    payload  TEXT    NOT NULL
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, id);
