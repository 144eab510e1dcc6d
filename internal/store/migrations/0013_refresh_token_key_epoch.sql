-- A refresh token from an API key carries the key's token epoch when it
-- was issued; locking the key starts a new epoch, so unlocking it does not
-- bring back refresh tokens from before the lock. Tokens stored before
-- this migration get epoch 0: those of a key locked since are refused,
-- and their clients exchange the key again.
ALTER TABLE refresh_tokens_all ADD COLUMN key_epoch BIGINT NOT NULL DEFAULT 0;
