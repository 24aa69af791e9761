-- Indexes for operators on large stores (docs/operations.md): listing, filtering and paging by
-- status and/or orchestrator name walk one of these in creation order and stop at the page
-- size, whatever the number of instances; purge by time range walks the status one.
-- instance_id ends each key so the (created_at, instance_id) continuation point is a range.
-- instances_by_status (status, created_at) of 0001 is a prefix of the first: dropped.

CREATE INDEX IF NOT EXISTS instances_by_status_created
    ON instances (status, created_at, instance_id);
CREATE INDEX IF NOT EXISTS instances_by_name_created
    ON instances (name, created_at, instance_id);
CREATE INDEX IF NOT EXISTS instances_by_status_name_created
    ON instances (status, name, created_at, instance_id);
DROP INDEX IF EXISTS instances_by_status;
