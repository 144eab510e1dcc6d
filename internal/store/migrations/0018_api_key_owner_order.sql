-- API keys are listed by their owner's kind and name, then their own name.
-- The key keeps its owner's kind and name (neither ever changes), so a page
-- of the list reads this index in order instead of joining and sorting
-- every key of the instance for each page.
ALTER TABLE api_keys ADD COLUMN owner_kind TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN owner_name TEXT NOT NULL DEFAULT '';
UPDATE api_keys SET owner_kind = (SELECT kind FROM identities WHERE identities.id = api_keys.owner_id),
    owner_name = (SELECT name FROM identities WHERE identities.id = api_keys.owner_id);
CREATE INDEX api_keys_list ON api_keys (instance_id, owner_kind, owner_name, name, id);
