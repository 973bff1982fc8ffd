-- +goose Up
-- Several Bay replicas on one database (issue 9): each replica records that it
-- is alive; the sessions it is starting and the idempotency keys it is
-- answering name it, so the others can tell a live claim (wait for it) from a
-- dead one (take it over) without waiting for a long timeout.
CREATE TABLE replicas (
    id           TEXT PRIMARY KEY,
    instance_id  TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

-- claimed_by: the replica starting the session; claim_expires_at: when its
-- start is overdue even if that replica still lives.
ALTER TABLE sessions ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN claim_expires_at BIGINT;

-- holder: the replica running the request that reserved the key.
ALTER TABLE idempotency_keys ADD COLUMN holder TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE idempotency_keys DROP COLUMN holder;
ALTER TABLE sessions DROP COLUMN claim_expires_at;
ALTER TABLE sessions DROP COLUMN claimed_by;
DROP TABLE replicas;
