-- Tokens minted from an API key before it was last locked stay refused
-- after it is unlocked: each lock starts a new token epoch for the key,
-- and a token carries the epoch it was minted in (claim "akep").
ALTER TABLE api_keys ADD COLUMN token_epoch BIGINT NOT NULL DEFAULT 0;
