-- The same-key lookup of a new alert (service, dedup key) without reading every alert of the
-- service.
CREATE INDEX alerts_service_key ON alerts (service_id, dedup_key, id);
