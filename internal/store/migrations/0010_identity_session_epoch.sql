-- Dashboard sessions end when their identity's password is set or its
-- role lowered: such a change bumps the epoch, and a session is valid only
-- with the epoch it was opened in. It lives in the store, so the check
-- holds on every replica.
ALTER TABLE identities ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
