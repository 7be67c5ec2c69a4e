-- On-call load (issue 9): each page sent to a person is classified when it is sent, by the
-- person's own local time, so the insights pages count interruptions with one indexed GROUP BY.
-- NULL: not a page to a person, or not classified yet (Store::classify_pending_interruptions
-- catches up at engine start); 'repeat': within 60 seconds of a counted interruption of the
-- same person; otherwise the class of a counted interruption.
ALTER TABLE notifications ADD COLUMN interruption TEXT
    CHECK (interruption IN ('working', 'evening', 'sleep', 'repeat'));

-- Range queries over counted interruptions (sent_at first: the range is the selective term).
CREATE INDEX notifications_interruptions ON notifications (sent_at, user_id, interruption)
    WHERE interruption IS NOT NULL;

-- What the catch-up pass has left to do (normally nothing, so this index stays tiny).
CREATE INDEX notifications_unclassified ON notifications (user_id)
    WHERE purpose = 'page' AND state = 'sent' AND user_id IS NOT NULL AND interruption IS NULL;
