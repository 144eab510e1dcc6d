-- A trace belongs to one runtime by its uid, not its name: deleting the
-- runtime ends its traces, and a new runtime of the same name starts
-- untraced. Traces of runtimes that are gone are dropped.
ALTER TABLE traces ADD COLUMN runtime_uid TEXT NOT NULL DEFAULT '';
UPDATE traces SET runtime_uid = COALESCE((SELECT r.uid FROM integration_runtimes r
    WHERE r.instance_id = traces.instance_id AND r.name = traces.runtime_name), '');
DELETE FROM traces WHERE runtime_uid = '';
CREATE INDEX traces_runtime_uid ON traces (runtime_uid);
