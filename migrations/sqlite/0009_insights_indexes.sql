-- Insights: postmortems due are found by resolution time (SEV1/SEV2 incidents resolved in a
-- range), which no index covered; without it every insights page read every incident.
CREATE INDEX incidents_resolved ON incidents (resolved_at);
