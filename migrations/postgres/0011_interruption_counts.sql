-- On-call load reads, for each person and class, the counted interruptions of a time range (and
-- of each on-call shift). Ordered by (user_id, interruption, sent_at) each such count is one
-- range of the index: no sort (SQLite answers a GROUP BY over a range led by sent_at by
-- sorting every page of it, about half a second for a year of a million pages). incident_id
-- comes last so that the service and severity filters are answered from the index too, without
-- reading the table. This replaces the sent_at-first index of 0008, which no query uses now.
DROP INDEX IF EXISTS notifications_interruptions;
CREATE INDEX notifications_user_interruptions
    ON notifications (user_id, interruption, sent_at, incident_id)
    WHERE interruption IS NOT NULL;
