-- Insights read every incident triggered in a range; this index holds every column they read,
-- so the scan does not visit the table (whose rows carry titles and descriptions).
CREATE INDEX incidents_insights ON incidents (triggered_at, severity, acknowledged_at, resolved_at, number);
-- Postmortems due: SEV1 and SEV2 incidents resolved in a range.
CREATE INDEX incidents_resolved_major ON incidents (resolved_at, severity, number) WHERE severity IN ('SEV1', 'SEV2');
