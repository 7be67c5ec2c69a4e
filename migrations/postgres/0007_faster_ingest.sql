-- The same-key lookup of a new alert (service, dedup key) without reading every alert of the
-- service.
CREATE INDEX alerts_service_key ON alerts (service_id, dedup_key, id);

-- Incident numbers from a sequence, so concurrent declarations no longer queue on one counter
-- row until they commit (a declaration that fails after taking its number leaves a gap).
CREATE SEQUENCE incident_numbers;
SELECT setval('incident_numbers', (SELECT value FROM counters WHERE name = 'incident_number') + 1, false);
