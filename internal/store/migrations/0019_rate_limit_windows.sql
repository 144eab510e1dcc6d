-- Rate-limit counters shared by the control-plane replicas of one
-- PostgreSQL database (store.RateWindows): how much of a key's quota the
-- replicas have reserved in the fixed window starting at window_start
-- (unix ms), and the size of the last reservation, which the upsert
-- returns. SQLite creates the table too but its single process counts in
-- memory.
CREATE TABLE rate_limit_windows (
    key TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    used BIGINT NOT NULL,
    last_grant BIGINT NOT NULL,
    PRIMARY KEY (key, window_start)
);
