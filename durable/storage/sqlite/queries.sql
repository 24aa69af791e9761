-- Queries for the SQLite backend. Each block starts with "-- name: <query name>"; the
-- PostgreSQL backend defines the same names. Named parameters use :name.
-- Instance rows are always selected with the columns of INSTANCE_COLUMNS in durable/storage/sql.py.

-- name: get_instance
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances WHERE instance_id = :instance_id;

-- name: get_instances_for
-- Waiters' poll (durable/waiting.py): the rows of many instances in one statement.
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances WHERE instance_id IN (SELECT value FROM json_each(:instance_ids));

-- name: lock_instance
SELECT status, revision, lease_owner, execution_id FROM instances
WHERE instance_id = :instance_id;

-- name: lock_instances
SELECT instance_id, status, revision, lease_owner, execution_id FROM instances
WHERE instance_id IN (SELECT value FROM json_each(:instance_ids));

-- name: lock_instances_checked
-- lock_instances, and per instance the positions of the batch's order checks (JSON
-- [[position, instance_id, before, [consumed ids]], ...]) that found a due message older than
-- `before` the commit does not consume (see OrchestrationCommit.handed_up_to), as JSON.
SELECT i.instance_id, i.status, i.revision, i.lease_owner, i.execution_id,
       (SELECT json_group_array(json_extract(c.value, '$[0]')) FROM json_each(:checks) AS c
        WHERE json_extract(c.value, '$[1]') = i.instance_id
          AND EXISTS (SELECT 1 FROM inbox m
                      WHERE m.instance_id = i.instance_id
                        AND m.id < json_extract(c.value, '$[2]') AND m.visible_at <= :now
                        AND m.id NOT IN (SELECT value FROM json_each(c.value, '$[3]'))))
FROM instances i
WHERE i.instance_id IN (SELECT value FROM json_each(:instance_ids));

-- name: insert_instance
INSERT INTO instances (instance_id, name, execution_id, status, created_at, updated_at, input,
                       version, parent_instance_id, revision, lease_owner, lease_expires_at)
VALUES (:instance_id, :name, :execution_id, 'Pending', :created_at, :created_at, :input,
        :version, :parent_instance_id, 1, :lease_owner, :lease_expires_at)
ON CONFLICT (instance_id) DO NOTHING;

-- name: insert_instances_rows
-- insert_instance per row, for starts whose IDs were just read to be free (the writer holds
-- the write lock; durable/storage/sqlite/grouped.py). Like every "_rows" query, it takes its
-- rows as one VALUES list (sql.values, durable/storage/sqlite/values.py) and ignores
-- the all-NULL rows that pad it.
WITH r(instance_id, name, execution_id, created_at, input, version, parent_instance_id,
       lease_owner, lease_expires_at) AS (VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?))
INSERT INTO instances (instance_id, name, execution_id, status, created_at, updated_at, input,
                       version, parent_instance_id, revision, lease_owner, lease_expires_at)
SELECT instance_id, name, execution_id, 'Pending', created_at, created_at, input, version,
       parent_instance_id, 1, lease_owner, lease_expires_at
FROM r WHERE instance_id IS NOT NULL;

-- name: reset_instance
UPDATE instances
SET name = :name, execution_id = :execution_id, status = 'Pending', created_at = :created_at,
    updated_at = :created_at, completed_at = NULL, input = :input, output = NULL,
    custom_status = NULL, failure = NULL, version = :version,
    parent_instance_id = :parent_instance_id, revision = revision + 1,
    lease_owner = :lease_owner, lease_expires_at = :lease_expires_at
WHERE instance_id = :instance_id
RETURNING revision;

-- name: delete_instance
DELETE FROM instances WHERE instance_id = :instance_id;

-- name: delete_history
DELETE FROM history WHERE instance_id = :instance_id;

-- name: delete_inbox
DELETE FROM inbox WHERE instance_id = :instance_id;

-- name: delete_tasks
DELETE FROM tasks WHERE instance_id = :instance_id;

-- name: delete_unclaimed_tasks
DELETE FROM tasks WHERE instance_id = :instance_id AND lease_owner IS NULL;

-- name: insert_message
-- Run as an "id" op: the backend reads the new row's id as the connection's last row id.
INSERT INTO inbox (instance_id, execution_id, visible_at, event)
VALUES (:instance_id, :execution_id, :visible_at, :event);

-- name: insert_inbox
-- insert_message for executemany (many messages at once).
INSERT INTO inbox (instance_id, execution_id, visible_at, event)
VALUES (:instance_id, :execution_id, :visible_at, :event);

-- name: insert_message_if_running
INSERT INTO inbox (instance_id, execution_id, visible_at, event)
SELECT :instance_id, :execution_id, :visible_at, :event
WHERE EXISTS (SELECT 1 FROM instances
              WHERE instance_id = :instance_id
                AND status NOT IN ('Completed', 'Failed', 'Terminated', 'Canceled'));

-- name: insert_message_if_running_id
-- insert_message_if_running, run as an "id" op: which row it inserted (none: the target has
-- finished).
INSERT INTO inbox (instance_id, execution_id, visible_at, event)
SELECT :instance_id, :execution_id, :visible_at, :event
WHERE EXISTS (SELECT 1 FROM instances
              WHERE instance_id = :instance_id
                AND status NOT IN ('Completed', 'Failed', 'Terminated', 'Canceled'));

-- name: inbox_behind
-- Of a batch's order checks (JSON [[position, instance_id, before, [consumed ids]], ...]), the
-- positions whose instance has a due message older than `before` that the commit does not
-- consume (see OrchestrationCommit.handed_up_to).
SELECT json_extract(c.value, '$[0]') FROM json_each(:checks) AS c
WHERE EXISTS (
    SELECT 1 FROM inbox m
    WHERE m.instance_id = json_extract(c.value, '$[1]')
      AND m.id < json_extract(c.value, '$[2]') AND m.visible_at <= :now
      AND m.id NOT IN (SELECT value FROM json_each(c.value, '$[3]')));

-- name: lease_ready_instances
UPDATE instances
SET lease_owner = :owner, lease_expires_at = :lease_expires_at
WHERE instance_id IN (
    SELECT DISTINCT m.instance_id
    FROM inbox m JOIN instances i ON i.instance_id = m.instance_id
    WHERE m.visible_at <= :now
      AND (i.lease_owner IS NULL OR i.lease_owner = :owner OR i.lease_expires_at < :now)
      AND i.instance_id NOT IN (SELECT value FROM json_each(:exclude))
    LIMIT :limit)
RETURNING instance_id, name, execution_id, status, revision, version;

-- name: lease_instances
UPDATE instances
SET lease_owner = :owner, lease_expires_at = :lease_expires_at
WHERE instance_id IN (SELECT value FROM json_each(:instance_ids))
  AND (lease_owner IS NULL OR lease_owner = :owner OR lease_expires_at < :now)
  AND EXISTS (SELECT 1 FROM inbox m
              WHERE m.instance_id = instances.instance_id AND m.visible_at <= :now)
RETURNING instance_id, name, execution_id, status, revision, version;

-- name: select_messages_for
-- Due order: timers that came due together (e.g. while no worker ran) arrive in the order
-- they fired, and a timer that fired before an event arrived comes first.
SELECT instance_id, id, execution_id, event FROM inbox
WHERE instance_id IN (SELECT value FROM json_each(:instance_ids)) AND visible_at <= :now
ORDER BY instance_id, visible_at, id;

-- name: select_first_messages_for
-- The first :per_instance due messages of each instance, in the order of select_messages_for
-- (the worker caps a lease's messages per instance, so a hot entity's inbox is read in parts).
-- Per instance, the subquery orders only row ids; only the rows kept are read whole (a window
-- function over the instance's inbox sorted every message, 5x slower for a 10,000 backlog).
SELECT m.instance_id, m.id, m.execution_id, m.event
FROM json_each(:instance_ids) AS wanted
JOIN inbox m ON m.id IN (SELECT i.id FROM inbox i
                         WHERE i.instance_id = wanted.value AND i.visible_at <= :now
                         ORDER BY i.visible_at, i.id LIMIT :per_instance)
ORDER BY m.instance_id, m.visible_at, m.id;

-- name: delete_message
DELETE FROM inbox WHERE id = :id;

-- name: select_history
SELECT events FROM history WHERE instance_id = :instance_id ORDER BY chunk;

-- name: select_history_for
SELECT instance_id, events FROM history
WHERE instance_id IN (SELECT value FROM json_each(:instance_ids))
ORDER BY instance_id, chunk;

-- name: insert_history
INSERT INTO history (instance_id, chunk, events) VALUES (:instance_id, :chunk, :events);

-- name: update_instance
UPDATE instances
SET status = :status, output = :output, failure = :failure,
    custom_status = COALESCE(:custom_status, custom_status),
    updated_at = :now, completed_at = :completed_at, revision = revision + 1,
    lease_owner = :lease_owner, lease_expires_at = :lease_expires_at
WHERE instance_id = :instance_id;

-- name: update_instance_keep_status
-- update_instance for an episode that leaves the status as it was (most of them): not
-- naming the column spares the indexes that contain it (SQLite rewrites an index entry
-- whenever an UPDATE sets one of its columns, even to the same value).
UPDATE instances
SET output = :output, failure = :failure,
    custom_status = COALESCE(:custom_status, custom_status),
    updated_at = :now, completed_at = :completed_at, revision = revision + 1,
    lease_owner = :lease_owner, lease_expires_at = :lease_expires_at
WHERE instance_id = :instance_id;

-- name: continue_instance
UPDATE instances
SET status = 'ContinuedAsNew', execution_id = :execution_id, input = :input, output = NULL,
    failure = NULL, custom_status = COALESCE(:custom_status, custom_status), updated_at = :now,
    revision = revision + 1, lease_owner = :lease_owner, lease_expires_at = :lease_expires_at
WHERE instance_id = :instance_id;

-- name: delete_leased_task
DELETE FROM tasks
WHERE instance_id = :instance_id AND execution_id = :execution_id AND task_id = :task_id
  AND +lease_owner = :owner;

-- name: insert_task
INSERT INTO tasks (instance_id, execution_id, task_id, name, input, visible_at, attempt,
                   lease_owner, lease_expires_at, version)
VALUES (:instance_id, :execution_id, :task_id, :name, :input, :now, :attempt,
        :lease_owner, :lease_expires_at, :version)
ON CONFLICT (instance_id, execution_id, task_id) DO NOTHING;

-- name: lease_tasks
UPDATE tasks
SET lease_owner = :owner, lease_expires_at = :lease_expires_at, attempt = attempt + 1
WHERE id IN (
    SELECT id FROM tasks
    WHERE (lease_owner IS NULL AND visible_at <= :now) OR lease_expires_at < :now
    ORDER BY id
    LIMIT :limit)
RETURNING instance_id, execution_id, task_id, name, input, attempt, version;

-- name: abandon_task
UPDATE tasks
SET lease_owner = NULL, lease_expires_at = NULL, visible_at = :visible_at
WHERE instance_id = :instance_id AND execution_id = :execution_id AND task_id = :task_id
  AND +lease_owner = :owner;

-- name: renew_instance_leases
-- Only the instances the worker names, never every lease of the owner (Backend.renew_leases).
UPDATE instances SET lease_expires_at = :lease_expires_at
WHERE instance_id IN (SELECT value FROM json_each(:instance_ids)) AND +lease_owner = :owner;

-- name: renew_task_leases
-- The named tasks (JSON [[instance_id, execution_id, task_id], ...]), as above.
UPDATE tasks SET lease_expires_at = :lease_expires_at
WHERE (instance_id, execution_id, task_id) IN (
          SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),
                 json_extract(value, '$[2]')
          FROM json_each(:tasks))
  AND +lease_owner = :owner;

-- name: release_instance
UPDATE instances SET lease_owner = NULL, lease_expires_at = NULL
WHERE instance_id = :instance_id AND lease_owner = :owner;

-- name: release_all_instances
UPDATE instances SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = :owner;

-- name: release_all_tasks
UPDATE tasks SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = :owner;

-- name: lease_owners
SELECT lease_owner FROM instances WHERE lease_owner IS NOT NULL
UNION
SELECT lease_owner FROM tasks WHERE lease_owner IS NOT NULL;

-- name: next_wakeup
SELECT MIN(visible_at) FROM inbox WHERE visible_at > :now;

-- name: query_instances
-- Any combination of filters, oldest first. The variants below name the status
-- (one) and/or the orchestrator name as plain equalities, so the planner walks the
-- matching index of migration 0003 in creation order and stops at the LIMIT; the _desc
-- variants walk it backwards (newest first). durable/storage/sql.py picks the variant and
-- passes open bounds as sentinels (never NULL), so the time range and the continuation
-- point are index range conditions rather than filters.
-- An instance-ID prefix is its key range (durable/storage/keys.py; :upper NULL = no upper
-- bound, and any TEXT sorts below a BLOB such as x''). Here it is only a filter of the walk
-- (+instance_id keeps it off the primary key): these variants serve prefixes that match many
-- instances, and query_instances_prefix below those that match few.
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE created_at >= :created_from AND created_at <= :created_to
  AND (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:prefix IS NULL OR (+instance_id >= :prefix AND +instance_id < ifnull(:upper, x'')))
  AND substr(instance_id, 1, 1) <> '@'  -- entities are listed apart
  AND (created_at, instance_id) > (:after_created, :after_id)
ORDER BY created_at, instance_id
LIMIT :limit;

-- name: query_instances_desc
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE created_at >= :created_from AND created_at <= :created_to
  AND (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:prefix IS NULL OR (+instance_id >= :prefix AND +instance_id < ifnull(:upper, x'')))
  AND substr(instance_id, 1, 1) <> '@'  -- entities are listed apart
  AND (created_at, instance_id) < (:after_created, :after_id)
ORDER BY created_at DESC, instance_id DESC
LIMIT :limit;

-- name: query_instances_status
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE status = :status
  AND created_at >= :created_from AND created_at <= :created_to
  AND (:prefix IS NULL OR (+instance_id >= :prefix AND +instance_id < ifnull(:upper, x'')))
  AND substr(instance_id, 1, 1) <> '@'  -- entities are listed apart
  AND (created_at, instance_id) > (:after_created, :after_id)
ORDER BY created_at, instance_id
LIMIT :limit;

-- name: query_instances_status_desc
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE status = :status
  AND created_at >= :created_from AND created_at <= :created_to
  AND (:prefix IS NULL OR (+instance_id >= :prefix AND +instance_id < ifnull(:upper, x'')))
  AND substr(instance_id, 1, 1) <> '@'  -- entities are listed apart
  AND (created_at, instance_id) < (:after_created, :after_id)
ORDER BY created_at DESC, instance_id DESC
LIMIT :limit;

-- name: query_instances_name
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE name = :name
  AND created_at >= :created_from AND created_at <= :created_to
  AND (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:prefix IS NULL OR (+instance_id >= :prefix AND +instance_id < ifnull(:upper, x'')))
  AND substr(instance_id, 1, 1) <> '@'  -- entities are listed apart
  AND (created_at, instance_id) > (:after_created, :after_id)
ORDER BY created_at, instance_id
LIMIT :limit;

-- name: query_instances_name_desc
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE name = :name
  AND created_at >= :created_from AND created_at <= :created_to
  AND (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:prefix IS NULL OR (+instance_id >= :prefix AND +instance_id < ifnull(:upper, x'')))
  AND substr(instance_id, 1, 1) <> '@'  -- entities are listed apart
  AND (created_at, instance_id) < (:after_created, :after_id)
ORDER BY created_at DESC, instance_id DESC
LIMIT :limit;

-- name: query_instances_status_name
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE status = :status
  AND name = :name
  AND created_at >= :created_from AND created_at <= :created_to
  AND (:prefix IS NULL OR (+instance_id >= :prefix AND +instance_id < ifnull(:upper, x'')))
  AND substr(instance_id, 1, 1) <> '@'  -- entities are listed apart
  AND (created_at, instance_id) > (:after_created, :after_id)
ORDER BY created_at, instance_id
LIMIT :limit;

-- name: query_instances_status_name_desc
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE status = :status
  AND name = :name
  AND created_at >= :created_from AND created_at <= :created_to
  AND (:prefix IS NULL OR (+instance_id >= :prefix AND +instance_id < ifnull(:upper, x'')))
  AND substr(instance_id, 1, 1) <> '@'  -- entities are listed apart
  AND (created_at, instance_id) < (:after_created, :after_id)
ORDER BY created_at DESC, instance_id DESC
LIMIT :limit;

-- name: count_prefix_range
-- How many instance IDs fall in a prefix's key range, counted up to :cap: a seek in the
-- primary key that stops there. sql.query_instances asks before listing by prefix, because
-- SQLite has no statistics to tell a prefix that matches few instances from one that matches
-- most of them (durable runs no ANALYZE).
SELECT count(*) FROM (
    SELECT 1 FROM instances
    WHERE instance_id >= :prefix AND instance_id < ifnull(:upper, x'')
    LIMIT :cap
);

-- name: query_instances_prefix
-- A prefix that matches few instances: read them from the primary key's range, sort them,
-- keep one page. Every other column is written +column (a unary plus keeps a term from using
-- an index) and so is the sort key, so neither the status/name indexes nor a creation-order
-- walk can be chosen instead: the cost is the matches, whatever the size of the store. The
-- inner query picks the page by its keys alone, so only the page's payloads are read.
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE instance_id IN (
    SELECT instance_id FROM instances
    WHERE instance_id >= :prefix AND instance_id < ifnull(:upper, x'')
      AND +created_at >= :created_from AND +created_at <= :created_to
      AND (:statuses IS NULL OR +status IN (SELECT value FROM json_each(:statuses)))
      AND (:name IS NULL OR +name = :name)
      AND substr(instance_id, 1, 1) <> '@'  -- entities are listed apart
      AND (+created_at, instance_id) > (:after_created, :after_id)
    ORDER BY +created_at, instance_id
    LIMIT :limit)
ORDER BY +created_at, instance_id;

-- name: query_instances_prefix_desc
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE instance_id IN (
    SELECT instance_id FROM instances
    WHERE instance_id >= :prefix AND instance_id < ifnull(:upper, x'')
      AND +created_at >= :created_from AND +created_at <= :created_to
      AND (:statuses IS NULL OR +status IN (SELECT value FROM json_each(:statuses)))
      AND (:name IS NULL OR +name = :name)
      AND substr(instance_id, 1, 1) <> '@'  -- entities are listed apart
      AND (+created_at, instance_id) < (:after_created, :after_id)
    ORDER BY +created_at DESC, instance_id DESC
    LIMIT :limit)
ORDER BY +created_at DESC, instance_id DESC;

-- name: select_purgeable
-- One batch of finished instances in the range (sentinel bounds, so the created_at range is an
-- index range); sql.purge_batch deletes them and the backend repeats until a batch is short.
SELECT instance_id FROM instances
WHERE status IN (SELECT value FROM json_each(:statuses))
  AND created_at >= :created_from AND created_at <= :created_to
LIMIT :limit;

-- name: delete_finished_instances
-- Re-checks the status: only rows still finished are deleted, and only their children go next.
DELETE FROM instances
WHERE instance_id IN (SELECT value FROM json_each(:instance_ids))
  AND status IN ('Completed', 'Failed', 'Terminated', 'Canceled')
RETURNING instance_id;

-- name: delete_history_of
DELETE FROM history WHERE instance_id IN (SELECT value FROM json_each(:instance_ids));

-- name: delete_inbox_of
DELETE FROM inbox WHERE instance_id IN (SELECT value FROM json_each(:instance_ids));

-- name: delete_tasks_of
DELETE FROM tasks WHERE instance_id IN (SELECT value FROM json_each(:instance_ids));

-- name: count_by_status
SELECT status, COUNT(*) FROM instances WHERE substr(instance_id, 1, 1) <> '@' GROUP BY status;

-- name: backlog
-- Due inbox messages and waiting activity tasks (unleased, or their lease expired), with the
-- time the oldest became due; and the workers that hold an unexpired lease.
SELECT
    (SELECT COUNT(*) FROM inbox WHERE visible_at <= :now),
    (SELECT MIN(visible_at) FROM inbox WHERE visible_at <= :now),
    (SELECT COUNT(*) FROM tasks
     WHERE (lease_owner IS NULL AND visible_at <= :now) OR lease_expires_at < :now),
    (SELECT MIN(visible_at) FROM tasks
     WHERE (lease_owner IS NULL AND visible_at <= :now) OR lease_expires_at < :now),
    (SELECT COUNT(*) FROM (
        SELECT lease_owner FROM instances
        WHERE lease_owner IS NOT NULL AND lease_expires_at >= :now
        UNION
        SELECT lease_owner FROM tasks
        WHERE lease_owner IS NOT NULL AND lease_expires_at >= :now));

-- name: get_setting
SELECT value FROM durable_settings WHERE key = :key;

-- name: put_setting
INSERT INTO durable_settings (key, value) VALUES (:key, :value)
ON CONFLICT (key) DO NOTHING;

-- Entities: rows whose instance ID is "@name@key"; their input column is the scheduler state.

-- name: schema_status
-- For readiness probes: the schema version (a read-only file is refused when the backend opens).
SELECT COALESCE(MAX(version), 0), 0 FROM durable_migrations;

-- name: insert_entity
INSERT INTO instances (instance_id, name, execution_id, status, created_at, updated_at,
                       revision)
VALUES (:instance_id, :name, :execution_id, 'Running', :now, :now, 1)
ON CONFLICT (instance_id) DO NOTHING;

-- name: update_entity
UPDATE instances
SET input = :state, updated_at = :now, revision = revision + 1,
    lease_owner = :lease_owner, lease_expires_at = :lease_expires_at
WHERE instance_id = :instance_id;

-- name: select_inputs_for
SELECT instance_id, input FROM instances
WHERE instance_id IN (SELECT value FROM json_each(:instance_ids));

-- name: query_entities
-- The key range of '@name' (durable/storage/keys.py; '@' alone ends before 'A'), so the scan
-- reads only the entities listed.
SELECT instance_id, name, execution_id, status, created_at, updated_at, input, output,
       custom_status, failure, version, parent_instance_id, completed_at, revision
FROM instances
WHERE instance_id >= :prefix AND instance_id < :upper
  AND (:updated_from IS NULL OR updated_at >= :updated_from)
  AND (:updated_to IS NULL OR updated_at <= :updated_to)
  AND (:after_id IS NULL OR instance_id > :after_id)
ORDER BY instance_id
LIMIT :limit;

-- name: count_inbox
SELECT COUNT(*) FROM inbox WHERE instance_id = :instance_id;

-- name: reopen_instance
-- Rewind: a Failed instance runs again.
UPDATE instances
SET status = 'Running', completed_at = NULL, updated_at = :now, revision = revision + 1
WHERE instance_id = :instance_id;

-- Set-based commits (durable/storage/batched.py): a commit batch's rows of one kind as one
-- JSON array of arrays, one statement per kind. SQLite only: they rely on its serial writes.

-- name: inbox_sequence
-- The highest inbox id ever handed out (AUTOINCREMENT's sequence, or the rows, whichever is
-- higher): new messages are numbered above it.
SELECT max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'inbox'), 0),
           COALESCE((SELECT max(id) FROM inbox), 0));

-- name: delete_messages_in
WITH r(id) AS (VALUES (?))
DELETE FROM inbox WHERE id IN (SELECT id FROM r);

-- name: delete_leased_tasks_in
WITH r(instance_id, execution_id, task_id, lease_owner) AS (VALUES (?, ?, ?, ?))
DELETE FROM tasks WHERE id IN (
    SELECT t.id FROM r CROSS JOIN tasks AS t
    ON t.instance_id = r.instance_id AND t.execution_id = r.execution_id
       AND t.task_id = r.task_id AND +t.lease_owner = r.lease_owner);

-- name: insert_history_rows
WITH r(instance_id, chunk, events) AS (VALUES (?, ?, ?))
INSERT INTO history (instance_id, chunk, events)
SELECT instance_id, chunk, events FROM r WHERE instance_id IS NOT NULL;

-- name: delete_unclaimed_tasks_of
DELETE FROM tasks
WHERE instance_id IN (SELECT value FROM json_each(:instance_ids)) AND lease_owner IS NULL;

-- name: update_instances_keep_status_rows
-- update_instance_keep_status per row. One row per instance.
WITH r(instance_id, output, failure, custom_status, completed_at, lease_owner,
       lease_expires_at, updated_at) AS (VALUES (?, ?, ?, ?, ?, ?, ?, ?))
UPDATE instances
SET output = r.output, failure = r.failure,
    custom_status = COALESCE(r.custom_status, instances.custom_status),
    updated_at = r.updated_at, completed_at = r.completed_at, revision = revision + 1,
    lease_owner = r.lease_owner, lease_expires_at = r.lease_expires_at
FROM r
WHERE instances.instance_id = r.instance_id;

-- name: renew_instances_rows
-- update_instances_keep_status_rows for a running instance that keeps its lease owner and
-- sets no output, failure or custom status: the same row, half the work (the lease owner's
-- index and the other columns are not rewritten).
WITH r(instance_id, lease_expires_at, updated_at) AS (VALUES (?, ?, ?))
UPDATE instances
SET output = NULL, failure = NULL, completed_at = NULL, updated_at = r.updated_at,
    revision = revision + 1, lease_expires_at = r.lease_expires_at
FROM r
WHERE instances.instance_id = r.instance_id;

-- name: update_instances_rows
-- update_instance per row: the columns of update_instances_keep_status_rows, then status.
WITH r(instance_id, output, failure, custom_status, completed_at, lease_owner,
       lease_expires_at, updated_at, status) AS (VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?))
UPDATE instances
SET status = r.status, output = r.output, failure = r.failure,
    custom_status = COALESCE(r.custom_status, instances.custom_status),
    updated_at = r.updated_at, completed_at = r.completed_at, revision = revision + 1,
    lease_owner = r.lease_owner, lease_expires_at = r.lease_expires_at
FROM r
WHERE instances.instance_id = r.instance_id;

-- name: update_entities_rows
-- update_entity per row.
WITH r(instance_id, state, lease_owner, lease_expires_at, updated_at)
    AS (VALUES (?, ?, ?, ?, ?))
UPDATE instances
SET input = r.state, updated_at = r.updated_at, revision = revision + 1,
    lease_owner = r.lease_owner, lease_expires_at = r.lease_expires_at
FROM r
WHERE instances.instance_id = r.instance_id;

-- name: insert_tasks_rows
-- insert_task per row.
WITH r(instance_id, execution_id, task_id, name, input, visible_at, attempt, lease_owner,
       lease_expires_at, version) AS (VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?))
INSERT INTO tasks (instance_id, execution_id, task_id, name, input, visible_at, attempt,
                   lease_owner, lease_expires_at, version)
SELECT instance_id, execution_id, task_id, name, input, visible_at, attempt, lease_owner,
       lease_expires_at, version
FROM r WHERE instance_id IS NOT NULL
ON CONFLICT (instance_id, execution_id, task_id) DO NOTHING;

-- name: insert_entities_rows
-- insert_entity per row.
WITH r(instance_id, name, execution_id, created_at) AS (VALUES (?, ?, ?, ?))
INSERT INTO instances (instance_id, name, execution_id, status, created_at, updated_at,
                       revision)
SELECT instance_id, name, execution_id, 'Running', created_at, created_at, 1
FROM r WHERE instance_id IS NOT NULL
ON CONFLICT (instance_id) DO NOTHING;

-- name: insert_messages_rows
-- The ids are handed out above inbox_sequence.
WITH r(id, instance_id, execution_id, visible_at, event) AS (VALUES (?, ?, ?, ?, ?))
INSERT INTO inbox (id, instance_id, execution_id, visible_at, event)
SELECT id, instance_id, execution_id, visible_at, event FROM r WHERE id IS NOT NULL;

-- name: advance_inbox_sequence
-- A batch's last message ids were handed out but not stored (their target finished in the
-- same batch): they are not handed out again.
UPDATE sqlite_sequence SET seq = :last WHERE name = 'inbox' AND seq < :last;

-- name: start_inbox_sequence
-- advance_inbox_sequence where the inbox never had a row.
INSERT INTO sqlite_sequence (name, seq)
SELECT 'inbox', :last WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'inbox');
