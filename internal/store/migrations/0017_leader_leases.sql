-- Leaderships on PostgreSQL are leases with an expiry, not only locks
-- held by a connection: a leader that stops renewing — killed, paused,
-- cut off from the database while its connection looks alive — loses
-- the lease when it expires, and another replica takes over. Times are
-- the database's clock (milliseconds since the epoch), so the replicas'
-- clocks need not agree.
CREATE TABLE leader_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
