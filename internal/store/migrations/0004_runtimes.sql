-- Integration runtimes: desired state (spec, generation) written by the
-- API, observed state (status) written by the reconciler. runtime_refs
-- lists what each runtime's spec names, so deleting a configuration or BAR
-- file in use can be refused. Traces record which runtimes are traced.
CREATE TABLE integration_runtimes (
    instance_id      TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    uid              TEXT NOT NULL UNIQUE,
    generation       BIGINT NOT NULL,
    spec             TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT '{}',
    version          BIGINT NOT NULL,
    fetch_token_hash TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    created_by       TEXT NOT NULL,
    updated_at       BIGINT NOT NULL,
    updated_by       TEXT NOT NULL,
    PRIMARY KEY (instance_id, name)
);

CREATE TABLE runtime_refs (
    instance_id  TEXT NOT NULL,
    runtime_name TEXT NOT NULL,
    kind         TEXT NOT NULL,
    ref_name     TEXT NOT NULL,
    PRIMARY KEY (instance_id, runtime_name, kind, ref_name)
);
CREATE INDEX runtime_refs_target ON runtime_refs (instance_id, kind, ref_name);

CREATE TABLE traces (
    instance_id  TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    runtime_name TEXT NOT NULL,
    type         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    PRIMARY KEY (instance_id, name)
);
