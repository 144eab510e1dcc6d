-- Data keys seal every secret the store holds; each is wrapped by the
-- master key (see internal/secret). Rotating the master key rewrites only
-- the wrapped column.
CREATE TABLE data_keys (
    id         TEXT PRIMARY KEY,
    master_fp  TEXT NOT NULL,
    wrapped    BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
