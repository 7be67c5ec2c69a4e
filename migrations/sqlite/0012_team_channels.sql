-- Team channels: a team's Slack-compatible or generic webhook that escalation policy levels
-- can post to, beside people and schedules. A channel is verified by a test send.

CREATE TABLE team_channels (
    id          INTEGER PRIMARY KEY,
    team_id     INTEGER NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    kind        TEXT    NOT NULL CHECK (kind IN ('slack', 'webhook')),
    url         TEXT    NOT NULL,
    verified_at TEXT,
    created_at  TEXT    NOT NULL,
    UNIQUE (team_id, name)
);

-- The channels each policy posts to, mirrored from `levels` like escalation_policy_targets,
-- so a channel still used by a policy cannot be deleted.
CREATE TABLE escalation_policy_channels (
    policy_id  INTEGER NOT NULL REFERENCES escalation_policies (id) ON DELETE CASCADE,
    channel_id INTEGER NOT NULL REFERENCES team_channels (id) ON DELETE RESTRICT,
    PRIMARY KEY (policy_id, channel_id)
);
CREATE INDEX escalation_policy_channels_channel ON escalation_policy_channels (channel_id);
