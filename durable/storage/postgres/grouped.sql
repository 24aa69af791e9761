-- Set-based client writes for the PostgreSQL backend (durable/storage/postgres/grouped.py).
-- A group of concurrent client calls (starts, events and controls, entity signals) becomes one
-- statement per kind, so a group costs a constant number of round trips whatever its size.
-- These have no SQLite twin: SQLite runs in-process and group-commits on its writer thread, so
-- its per-item statements cost no round trips (and SQLite has no data-modifying CTEs).
-- Arrays arrive in the group's order (sorted by instance ID, then arrival); "ordinal" keeps it.
-- Instance IDs compare with COLLATE "C", the collation of the instance_id columns.

-- name: start_instances
-- Insert every new instance that does not exist yet and queue its ExecutionStarted, in one
-- statement. ON CONFLICT DO NOTHING is the singleton check: a row inserted by a concurrent
-- transaction makes this one wait for it, then skip. Within the group, the first of several
-- starts of one ID wins (ordinal order). Returns the winners' inbox message ids; every start
-- not returned lost to an existing row and is decided by grouped.py after lock_instances.
WITH new AS (
    SELECT * FROM unnest(
        %(instance_ids)s::text[], %(names)s::text[], %(execution_ids)s::text[],
        %(created_ats)s::float8[], %(inputs)s::text[], %(versions)s::text[],
        %(parents)s::text[], %(lease_owners)s::text[], %(lease_expires)s::float8[],
        %(events)s::text[], %(ordinals)s::int[]
    ) AS t(instance_id, name, execution_id, created_at, input, version, parent_instance_id,
           lease_owner, lease_expires_at, event, ordinal)
),
created AS (
    INSERT INTO instances (instance_id, name, execution_id, status, created_at, updated_at,
                           input, version, parent_instance_id, revision, lease_owner,
                           lease_expires_at)
    SELECT instance_id, name, execution_id, 'Pending', created_at, created_at, input, version,
           parent_instance_id, 1, lease_owner, lease_expires_at
    FROM new ORDER BY ordinal
    ON CONFLICT (instance_id) DO NOTHING
    RETURNING instance_id, execution_id
),
queued AS (
    INSERT INTO inbox (instance_id, execution_id, visible_at, event)
    SELECT n.instance_id, n.execution_id, %(now)s::float8, n.event
    FROM new n JOIN created c
      ON c.execution_id = n.execution_id AND c.instance_id = n.instance_id COLLATE "C"
    ORDER BY n.ordinal
    RETURNING id, execution_id
)
SELECT execution_id, id FROM queued;

-- name: send_messages
-- Events, terminate, suspend, resume for running instances. The instance rows are locked in
-- ID order (as lock_instance does for one), so a commit finishing an instance either comes
-- first (its status is seen, nothing is queued) or waits for this transaction. Returns the
-- status of every target that exists; grouped.py turns missing and finished ones into errors.
WITH sent AS (
    SELECT * FROM unnest(
        %(instance_ids)s::text[], %(execution_ids)s::text[], %(visible_ats)s::float8[],
        %(events)s::text[], %(ordinals)s::int[]
    ) AS t(instance_id, execution_id, visible_at, event, ordinal)
),
target AS (
    SELECT instance_id, status FROM instances
    WHERE instance_id = ANY(%(instance_ids)s::text[])
    ORDER BY instance_id
    FOR UPDATE
),
queued AS (
    INSERT INTO inbox (instance_id, execution_id, visible_at, event)
    SELECT s.instance_id, s.execution_id, s.visible_at, s.event
    FROM sent s JOIN target t ON t.instance_id = s.instance_id COLLATE "C"
    WHERE t.status NOT IN ('Completed', 'Failed', 'Terminated', 'Canceled')
    ORDER BY s.ordinal
    RETURNING id
)
SELECT instance_id, status, (SELECT COUNT(*) FROM queued) FROM target;

-- name: signal_entities
-- Entity signals: create each entity's row on its first message (as insert_entity), then queue
-- every message, in one statement.
WITH sig AS (
    SELECT * FROM unnest(
        %(instance_ids)s::text[], %(names)s::text[], %(new_execution_ids)s::text[],
        %(execution_ids)s::text[], %(visible_ats)s::float8[], %(events)s::text[],
        %(ordinals)s::int[]
    ) AS t(instance_id, name, new_execution_id, execution_id, visible_at, event, ordinal)
),
made AS (
    INSERT INTO instances (instance_id, name, execution_id, status, created_at, updated_at,
                           revision)
    SELECT DISTINCT ON (instance_id) instance_id, name, new_execution_id, 'Running',
           %(now)s::float8, %(now)s::float8, 1
    FROM sig ORDER BY instance_id, ordinal
    ON CONFLICT (instance_id) DO NOTHING
    RETURNING instance_id
),
queued AS (
    INSERT INTO inbox (instance_id, execution_id, visible_at, event)
    SELECT instance_id, execution_id, visible_at, event FROM sig ORDER BY ordinal
    RETURNING id
)
SELECT (SELECT COUNT(*) FROM made), (SELECT COUNT(*) FROM queued);
