-- Queries for the PostgreSQL backend. Each block starts with "-- name: <query name>" and the set
-- of names is exactly the SQLite backend's (tests/storage/test_query_files.py checks it); the
-- logic that strings them together is durable/storage/sql.py, shared by both backends.
-- Named parameters use %(name)s; lists arrive as arrays (= ANY(...)). Tables are unqualified:
-- each task hub is a schema, chosen by the connection's search_path.
-- Parameters that may be NULL in an "IS NULL OR ..." test carry casts, because PostgreSQL cannot
-- infer the type of a bare NULL parameter.
--
-- Concurrency (READ COMMITTED, many workers):
-- - lock_instance(s) takes the row lock; create, send and commit go through it, so they serialize
--   per instance and the fence (revision + lease owner) is read from the latest committed row.
-- - Leasing picks candidates with FOR UPDATE SKIP LOCKED: a worker never waits for another;
--   PostgreSQL re-checks the lease condition on the locked row before the UPDATE applies.
-- - Bulk lease renewal also skips locked rows: a row is only locked by a commit (which extends
--   the lease itself) or briefly by a worker that will find the lease still valid.

-- name: get_instance
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances WHERE instance_id = %(instance_id)s;

-- name: get_instances_for
-- Waiters' poll (durable/waiting.py): the rows of many instances in one statement.
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances WHERE instance_id = ANY(%(instance_ids)s::text[]);

-- name: lock_instance
SELECT status, revision, lease_owner, execution_id FROM instances
WHERE instance_id = %(instance_id)s
FOR UPDATE;

-- name: lock_instances
-- Sorted, so concurrent batches take their row locks in one global order.
SELECT instance_id, status, revision, lease_owner, execution_id FROM instances
WHERE instance_id = ANY(%(instance_ids)s::text[])
ORDER BY instance_id
FOR UPDATE;

-- name: lock_instances_checked
-- lock_instances, and per instance the positions of the batch's order checks (JSON
-- [[position, instance_id, before, [consumed ids]], ...]) that found a due message older than
-- `before` the commit does not consume (see OrchestrationCommit.handed_up_to), as JSON text:
-- the checks ride on the lock's round trip.
SELECT i.instance_id, i.status, i.revision, i.lease_owner, i.execution_id,
       (SELECT COALESCE(json_agg((c.value ->> 0)::int), '[]'::json)::text
        FROM jsonb_array_elements(%(checks)s::jsonb) AS c(value)
        WHERE c.value ->> 1 = i.instance_id
          AND EXISTS (SELECT 1 FROM inbox m
                      WHERE m.instance_id = i.instance_id
                        AND m.id < (c.value ->> 2)::bigint AND m.visible_at <= %(now)s
                        AND m.id NOT IN (SELECT jsonb_array_elements_text(c.value -> 3)::bigint)))
FROM instances i
WHERE i.instance_id = ANY(%(instance_ids)s::text[])
ORDER BY i.instance_id
FOR UPDATE OF i;

-- name: insert_instance
INSERT INTO instances (instance_id, name, execution_id, status, created_at, updated_at, input,
                       version, parent_instance_id, revision, lease_owner, lease_expires_at)
VALUES (%(instance_id)s, %(name)s, %(execution_id)s, 'Pending', %(created_at)s, %(created_at)s,
        %(input)s, %(version)s, %(parent_instance_id)s, 1, %(lease_owner)s,
        %(lease_expires_at)s)
ON CONFLICT (instance_id) DO NOTHING;

-- name: reset_instance
UPDATE instances
SET name = %(name)s, execution_id = %(execution_id)s, status = 'Pending',
    created_at = %(created_at)s, updated_at = %(created_at)s, completed_at = NULL,
    input = %(input)s, output = NULL, custom_status = NULL, failure = NULL,
    version = %(version)s, parent_instance_id = %(parent_instance_id)s,
    revision = revision + 1, lease_owner = %(lease_owner)s,
    lease_expires_at = %(lease_expires_at)s
WHERE instance_id = %(instance_id)s
RETURNING revision;

-- name: delete_instance
DELETE FROM instances WHERE instance_id = %(instance_id)s;

-- name: delete_history
DELETE FROM history WHERE instance_id = %(instance_id)s;

-- name: delete_inbox
DELETE FROM inbox WHERE instance_id = %(instance_id)s;

-- name: delete_tasks
DELETE FROM tasks WHERE instance_id = %(instance_id)s;

-- name: delete_unclaimed_tasks
DELETE FROM tasks WHERE instance_id = %(instance_id)s AND lease_owner IS NULL;

-- name: insert_message
INSERT INTO inbox (instance_id, execution_id, visible_at, event)
VALUES (%(instance_id)s, %(execution_id)s, %(visible_at)s, %(event)s)
RETURNING id;

-- name: insert_inbox
-- insert_message without RETURNING, for executemany (many messages at once).
INSERT INTO inbox (instance_id, execution_id, visible_at, event)
VALUES (%(instance_id)s, %(execution_id)s, %(visible_at)s, %(event)s);

-- name: insert_message_if_running
INSERT INTO inbox (instance_id, execution_id, visible_at, event)
SELECT %(instance_id)s::text, %(execution_id)s::text, %(visible_at)s::float8, %(event)s::text
WHERE EXISTS (SELECT 1 FROM instances
              WHERE instance_id = %(instance_id)s::text
                AND status NOT IN ('Completed', 'Failed', 'Terminated', 'Canceled'));

-- name: insert_message_if_running_id
-- insert_message_if_running that says which row it inserted (none: the target has finished).
INSERT INTO inbox (instance_id, execution_id, visible_at, event)
SELECT %(instance_id)s::text, %(execution_id)s::text, %(visible_at)s::float8, %(event)s::text
WHERE EXISTS (SELECT 1 FROM instances
              WHERE instance_id = %(instance_id)s::text
                AND status NOT IN ('Completed', 'Failed', 'Terminated', 'Canceled'))
RETURNING id;

-- name: inbox_behind
-- Of a batch's order checks (JSON [[position, instance_id, before, [consumed ids]], ...]), the
-- positions whose instance has a due message older than `before` that the commit does not
-- consume (see OrchestrationCommit.handed_up_to). The PostgreSQL worker hands nothing over
-- (reports_message_ids is off), so only direct commits with handed_up_to run this.
SELECT (c.value ->> 0)::int FROM jsonb_array_elements(%(checks)s::jsonb) AS c(value)
WHERE EXISTS (
    SELECT 1 FROM inbox m
    WHERE m.instance_id = c.value ->> 1
      AND m.id < (c.value ->> 2)::bigint AND m.visible_at <= %(now)s
      AND m.id NOT IN (SELECT jsonb_array_elements_text(c.value -> 3)::bigint));

-- name: lease_ready_instances
-- Driven from the inbox (small) rather than the instances table (grows without bound).
UPDATE instances AS i
SET lease_owner = %(owner)s, lease_expires_at = %(lease_expires_at)s
FROM (
    SELECT c.instance_id
    FROM instances c
    WHERE c.instance_id IN (SELECT m.instance_id FROM inbox m
                            WHERE m.visible_at <= %(now)s::float8)
      AND (c.lease_owner IS NULL OR c.lease_owner = %(owner)s
           OR c.lease_expires_at < %(now)s::float8)
      AND c.instance_id <> ALL(%(exclude)s::text[])
    LIMIT %(limit)s
    FOR UPDATE OF c SKIP LOCKED
) AS ready
WHERE i.instance_id = ready.instance_id
RETURNING i.instance_id, i.name, i.execution_id, i.status, i.revision, i.version;

-- name: lease_instances
UPDATE instances AS i
SET lease_owner = %(owner)s, lease_expires_at = %(lease_expires_at)s
FROM (
    SELECT c.instance_id
    FROM instances c
    WHERE c.instance_id = ANY(%(instance_ids)s::text[])
      AND (c.lease_owner IS NULL OR c.lease_owner = %(owner)s
           OR c.lease_expires_at < %(now)s::float8)
      AND EXISTS (SELECT 1 FROM inbox m
                  WHERE m.instance_id = c.instance_id AND m.visible_at <= %(now)s::float8)
    ORDER BY c.instance_id
    FOR UPDATE OF c SKIP LOCKED
) AS ready
WHERE i.instance_id = ready.instance_id
RETURNING i.instance_id, i.name, i.execution_id, i.status, i.revision, i.version;

-- name: select_messages_for
-- Due order: timers that came due together (e.g. while no worker ran) arrive in the order
-- they fired, and a timer that fired before an event arrived comes first.
SELECT instance_id, id, execution_id, event FROM inbox
WHERE instance_id = ANY(%(instance_ids)s::text[]) AND visible_at <= %(now)s
ORDER BY instance_id, visible_at, id;

-- name: select_first_messages_for
-- The first per_instance due messages of each instance, in the order of select_messages_for
-- (the worker caps a lease's messages per instance, so a hot entity's inbox is read in parts).
SELECT m.instance_id, m.id, m.execution_id, m.event
FROM unnest(%(instance_ids)s::text[]) AS wanted(instance_id)
CROSS JOIN LATERAL (
    SELECT i.instance_id, i.id, i.execution_id, i.event, i.visible_at FROM inbox i
    WHERE i.instance_id = wanted.instance_id AND i.visible_at <= %(now)s
    ORDER BY i.visible_at, i.id
    LIMIT %(per_instance)s) AS m
ORDER BY m.instance_id, m.visible_at, m.id;

-- name: delete_message
DELETE FROM inbox WHERE id = %(id)s;

-- name: select_history
SELECT events FROM history WHERE instance_id = %(instance_id)s ORDER BY chunk;

-- name: select_history_for
SELECT instance_id, events FROM history
WHERE instance_id = ANY(%(instance_ids)s::text[])
ORDER BY instance_id, chunk;

-- name: insert_history
INSERT INTO history (instance_id, chunk, events)
VALUES (%(instance_id)s, %(chunk)s, %(events)s);

-- name: update_instance
UPDATE instances
SET status = %(status)s, output = %(output)s, failure = %(failure)s,
    custom_status = COALESCE(%(custom_status)s::text, custom_status),
    updated_at = %(now)s, completed_at = %(completed_at)s, revision = revision + 1,
    lease_owner = %(lease_owner)s, lease_expires_at = %(lease_expires_at)s
WHERE instance_id = %(instance_id)s;

-- name: update_instance_keep_status
-- update_instance for an episode that leaves the status as it was (most of them): not
-- naming the column spares the indexes that contain it (SQLite rewrites an index entry
-- whenever an UPDATE sets one of its columns, even to the same value).
UPDATE instances
SET output = %(output)s, failure = %(failure)s,
    custom_status = COALESCE(%(custom_status)s::text, custom_status),
    updated_at = %(now)s, completed_at = %(completed_at)s, revision = revision + 1,
    lease_owner = %(lease_owner)s, lease_expires_at = %(lease_expires_at)s
WHERE instance_id = %(instance_id)s;

-- name: continue_instance
UPDATE instances
SET status = 'ContinuedAsNew', execution_id = %(execution_id)s, input = %(input)s,
    output = NULL, failure = NULL,
    custom_status = COALESCE(%(custom_status)s::text, custom_status), updated_at = %(now)s,
    revision = revision + 1, lease_owner = %(lease_owner)s,
    lease_expires_at = %(lease_expires_at)s
WHERE instance_id = %(instance_id)s;

-- name: delete_leased_task
DELETE FROM tasks
WHERE instance_id = %(instance_id)s AND execution_id = %(execution_id)s
  AND task_id = %(task_id)s AND lease_owner = %(owner)s;

-- name: insert_task
INSERT INTO tasks (instance_id, execution_id, task_id, name, input, visible_at, attempt,
                   lease_owner, lease_expires_at, version)
VALUES (%(instance_id)s, %(execution_id)s, %(task_id)s, %(name)s, %(input)s, %(now)s,
        %(attempt)s, %(lease_owner)s, %(lease_expires_at)s, %(version)s)
ON CONFLICT (instance_id, execution_id, task_id) DO NOTHING;

-- name: lease_tasks
UPDATE tasks AS t
SET lease_owner = %(owner)s, lease_expires_at = %(lease_expires_at)s, attempt = t.attempt + 1
FROM (
    SELECT id FROM tasks
    WHERE (lease_owner IS NULL AND visible_at <= %(now)s::float8)
       OR (lease_owner IS NOT NULL AND lease_expires_at < %(now)s::float8)
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) AS picked
WHERE t.id = picked.id
RETURNING t.instance_id, t.execution_id, t.task_id, t.name, t.input, t.attempt, t.version;

-- name: abandon_task
UPDATE tasks
SET lease_owner = NULL, lease_expires_at = NULL, visible_at = %(visible_at)s
WHERE instance_id = %(instance_id)s AND execution_id = %(execution_id)s
  AND task_id = %(task_id)s AND lease_owner = %(owner)s;

-- name: renew_instance_leases
-- Only the instances the worker names (it knows it holds them), never every lease of the
-- owner: a lease whose grant never reached the worker must lapse (Backend.renew_leases).
UPDATE instances AS i SET lease_expires_at = %(lease_expires_at)s
FROM (SELECT instance_id FROM instances
      WHERE instance_id = ANY(%(instance_ids)s::text[]) AND lease_owner = %(owner)s
      ORDER BY instance_id
      FOR UPDATE SKIP LOCKED) AS mine
WHERE i.instance_id = mine.instance_id;

-- name: renew_task_leases
-- The named tasks (JSON [[instance_id, execution_id, task_id], ...]), as above.
UPDATE tasks AS t SET lease_expires_at = %(lease_expires_at)s
FROM (SELECT k.id FROM tasks k
      WHERE (k.instance_id, k.execution_id, k.task_id) IN (
                SELECT c.value ->> 0, c.value ->> 1, (c.value ->> 2)::int
                FROM jsonb_array_elements(%(tasks)s::jsonb) AS c(value))
        AND k.lease_owner = %(owner)s
      ORDER BY k.id
      FOR UPDATE OF k SKIP LOCKED) AS mine
WHERE t.id = mine.id;

-- name: release_instance
UPDATE instances SET lease_owner = NULL, lease_expires_at = NULL
WHERE instance_id = %(instance_id)s AND lease_owner = %(owner)s;

-- name: release_all_instances
UPDATE instances SET lease_owner = NULL, lease_expires_at = NULL
WHERE lease_owner = %(owner)s;

-- name: release_all_tasks
UPDATE tasks SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = %(owner)s;

-- name: lease_owners
SELECT lease_owner FROM instances WHERE lease_owner IS NOT NULL
UNION
SELECT lease_owner FROM tasks WHERE lease_owner IS NOT NULL;

-- name: next_wakeup
SELECT MIN(visible_at) FROM inbox WHERE visible_at > %(now)s;

-- name: query_instances
-- Any combination of filters, oldest first. The variants below name the status
-- (one) and/or the orchestrator name as plain equalities, so the planner walks the
-- matching index of migration 0003 in creation order and stops at the LIMIT; the _desc
-- variants walk it backwards (newest first). durable/storage/sql.py picks the variant and
-- passes open bounds as sentinels (never NULL), so the time range and the continuation
-- point are index range conditions rather than filters.
-- An instance-ID prefix is its key range (durable/storage/keys.py; %(upper)s NULL = no upper
-- bound), compared as bytes like the column (COLLATE "C", whatever the database's collation).
-- A query with a prefix is bound on the client (sql.Op.plan_with_values), so PostgreSQL plans
-- it with the prefix in hand: the NULL tests fold away, and its statistics choose between
-- the primary key's range (a prefix that matches few instances) and the creation-order walk
-- (one that matches many). A prepared statement's generic plan walks whatever the prefix.
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE created_at >= %(created_from)s::float8 AND created_at <= %(created_to)s::float8
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(prefix)s::text IS NULL OR (instance_id >= %(prefix)s::text COLLATE "C"
       AND (%(upper)s::text IS NULL OR instance_id < %(upper)s::text COLLATE "C")))
  AND NOT starts_with(instance_id, '@')  -- entities are listed apart
  AND (created_at, instance_id) > (%(after_created)s::float8, %(after_id)s::text)
ORDER BY created_at, instance_id
LIMIT %(limit)s;

-- name: query_instances_desc
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE created_at >= %(created_from)s::float8 AND created_at <= %(created_to)s::float8
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(prefix)s::text IS NULL OR (instance_id >= %(prefix)s::text COLLATE "C"
       AND (%(upper)s::text IS NULL OR instance_id < %(upper)s::text COLLATE "C")))
  AND NOT starts_with(instance_id, '@')  -- entities are listed apart
  AND (created_at, instance_id) < (%(after_created)s::float8, %(after_id)s::text)
ORDER BY created_at DESC, instance_id DESC
LIMIT %(limit)s;

-- name: query_instances_status
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE status = %(status)s
  AND created_at >= %(created_from)s::float8 AND created_at <= %(created_to)s::float8
  AND (%(prefix)s::text IS NULL OR (instance_id >= %(prefix)s::text COLLATE "C"
       AND (%(upper)s::text IS NULL OR instance_id < %(upper)s::text COLLATE "C")))
  AND NOT starts_with(instance_id, '@')  -- entities are listed apart
  AND (created_at, instance_id) > (%(after_created)s::float8, %(after_id)s::text)
ORDER BY created_at, instance_id
LIMIT %(limit)s;

-- name: query_instances_status_desc
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE status = %(status)s
  AND created_at >= %(created_from)s::float8 AND created_at <= %(created_to)s::float8
  AND (%(prefix)s::text IS NULL OR (instance_id >= %(prefix)s::text COLLATE "C"
       AND (%(upper)s::text IS NULL OR instance_id < %(upper)s::text COLLATE "C")))
  AND NOT starts_with(instance_id, '@')  -- entities are listed apart
  AND (created_at, instance_id) < (%(after_created)s::float8, %(after_id)s::text)
ORDER BY created_at DESC, instance_id DESC
LIMIT %(limit)s;

-- name: query_instances_name
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE name = %(name)s
  AND created_at >= %(created_from)s::float8 AND created_at <= %(created_to)s::float8
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(prefix)s::text IS NULL OR (instance_id >= %(prefix)s::text COLLATE "C"
       AND (%(upper)s::text IS NULL OR instance_id < %(upper)s::text COLLATE "C")))
  AND NOT starts_with(instance_id, '@')  -- entities are listed apart
  AND (created_at, instance_id) > (%(after_created)s::float8, %(after_id)s::text)
ORDER BY created_at, instance_id
LIMIT %(limit)s;

-- name: query_instances_name_desc
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE name = %(name)s
  AND created_at >= %(created_from)s::float8 AND created_at <= %(created_to)s::float8
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(prefix)s::text IS NULL OR (instance_id >= %(prefix)s::text COLLATE "C"
       AND (%(upper)s::text IS NULL OR instance_id < %(upper)s::text COLLATE "C")))
  AND NOT starts_with(instance_id, '@')  -- entities are listed apart
  AND (created_at, instance_id) < (%(after_created)s::float8, %(after_id)s::text)
ORDER BY created_at DESC, instance_id DESC
LIMIT %(limit)s;

-- name: query_instances_status_name
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE status = %(status)s
  AND name = %(name)s
  AND created_at >= %(created_from)s::float8 AND created_at <= %(created_to)s::float8
  AND (%(prefix)s::text IS NULL OR (instance_id >= %(prefix)s::text COLLATE "C"
       AND (%(upper)s::text IS NULL OR instance_id < %(upper)s::text COLLATE "C")))
  AND NOT starts_with(instance_id, '@')  -- entities are listed apart
  AND (created_at, instance_id) > (%(after_created)s::float8, %(after_id)s::text)
ORDER BY created_at, instance_id
LIMIT %(limit)s;

-- name: query_instances_status_name_desc
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE status = %(status)s
  AND name = %(name)s
  AND created_at >= %(created_from)s::float8 AND created_at <= %(created_to)s::float8
  AND (%(prefix)s::text IS NULL OR (instance_id >= %(prefix)s::text COLLATE "C"
       AND (%(upper)s::text IS NULL OR instance_id < %(upper)s::text COLLATE "C")))
  AND NOT starts_with(instance_id, '@')  -- entities are listed apart
  AND (created_at, instance_id) < (%(after_created)s::float8, %(after_id)s::text)
ORDER BY created_at DESC, instance_id DESC
LIMIT %(limit)s;

-- name: select_purgeable
-- One batch of finished instances in the range (sentinel bounds, so the created_at range is an
-- index range); sql.purge_batch deletes them and the backend repeats until a batch is short.
SELECT instance_id FROM instances
WHERE status = ANY(%(statuses)s::text[])
  AND created_at >= %(created_from)s::float8 AND created_at <= %(created_to)s::float8
LIMIT %(limit)s;

-- name: delete_finished_instances
-- Re-checks the status on the locked row: an instance restarted meanwhile is left alone, and
-- only the children of rows actually deleted go next.
DELETE FROM instances
WHERE instance_id = ANY(%(instance_ids)s::text[])
  AND status IN ('Completed', 'Failed', 'Terminated', 'Canceled')
RETURNING instance_id;

-- name: delete_history_of
DELETE FROM history WHERE instance_id = ANY(%(instance_ids)s::text[]);

-- name: delete_inbox_of
DELETE FROM inbox WHERE instance_id = ANY(%(instance_ids)s::text[]);

-- name: delete_tasks_of
DELETE FROM tasks WHERE instance_id = ANY(%(instance_ids)s::text[]);

-- name: count_by_status
SELECT status, COUNT(*) FROM instances WHERE NOT starts_with(instance_id, '@') GROUP BY status;

-- name: backlog
-- Due inbox messages and waiting activity tasks (unleased, or their lease expired), with the
-- time the oldest became due; and the workers that hold an unexpired lease.
SELECT
    (SELECT COUNT(*) FROM inbox WHERE visible_at <= %(now)s::float8),
    (SELECT MIN(visible_at) FROM inbox WHERE visible_at <= %(now)s::float8),
    (SELECT COUNT(*) FROM tasks
     WHERE (lease_owner IS NULL AND visible_at <= %(now)s::float8)
        OR (lease_owner IS NOT NULL AND lease_expires_at < %(now)s::float8)),
    (SELECT MIN(visible_at) FROM tasks
     WHERE (lease_owner IS NULL AND visible_at <= %(now)s::float8)
        OR (lease_owner IS NOT NULL AND lease_expires_at < %(now)s::float8)),
    (SELECT COUNT(*) FROM (
        SELECT lease_owner FROM instances
        WHERE lease_owner IS NOT NULL AND lease_expires_at >= %(now)s::float8
        UNION
        SELECT lease_owner FROM tasks
        WHERE lease_owner IS NOT NULL AND lease_expires_at >= %(now)s::float8) AS owners);

-- name: get_setting
SELECT value FROM durable_settings WHERE key = %(key)s;

-- name: put_setting
INSERT INTO durable_settings (key, value) VALUES (%(key)s, %(value)s)
ON CONFLICT (key) DO NOTHING;

-- name: schema_status
-- For readiness probes: the schema version, and whether this session can write (a standby, or
-- default_transaction_read_only, answers reads but refuses every write).
SELECT COALESCE(MAX(version), 0), current_setting('transaction_read_only') = 'on'
FROM durable_migrations;

-- Entities: rows whose instance ID is "@name@key"; their input column is the scheduler state.

-- name: insert_entity
INSERT INTO instances (instance_id, name, execution_id, status, created_at, updated_at,
                       revision)
VALUES (%(instance_id)s, %(name)s, %(execution_id)s, 'Running', %(now)s, %(now)s, 1)
ON CONFLICT (instance_id) DO NOTHING;

-- name: update_entity
UPDATE instances
SET input = %(state)s, updated_at = %(now)s, revision = revision + 1,
    lease_owner = %(lease_owner)s, lease_expires_at = %(lease_expires_at)s
WHERE instance_id = %(instance_id)s;

-- name: select_inputs_for
SELECT instance_id, input FROM instances WHERE instance_id = ANY(%(instance_ids)s::text[]);

-- name: query_entities
-- The key range of '@name' (durable/storage/keys.py; '@' alone ends before 'A'), compared as
-- bytes (COLLATE "C"), so the primary key's scan reads only the entities listed.
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE instance_id >= %(prefix)s::text COLLATE "C" AND instance_id < %(upper)s::text COLLATE "C"
  AND (%(updated_from)s::float8 IS NULL OR updated_at >= %(updated_from)s::float8)
  AND (%(updated_to)s::float8 IS NULL OR updated_at <= %(updated_to)s::float8)
  AND (%(after_id)s::text IS NULL OR instance_id > %(after_id)s::text)
ORDER BY instance_id
LIMIT %(limit)s;

-- name: count_inbox
SELECT COUNT(*) FROM inbox WHERE instance_id = %(instance_id)s;

-- name: reopen_instance
-- Rewind: a Failed instance runs again.
UPDATE instances
SET status = 'Running', completed_at = NULL, updated_at = %(now)s, revision = revision + 1
WHERE instance_id = %(instance_id)s;
