-- Initial schema. Times are UTC epoch seconds (REAL); payloads are JSON text.

CREATE TABLE instances (
    instance_id        TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    execution_id       TEXT NOT NULL,
    status             TEXT NOT NULL,
    created_at         REAL NOT NULL,
    updated_at         REAL NOT NULL,
    completed_at       REAL,
    input              TEXT,
    output             TEXT,
    custom_status      TEXT,
    failure            TEXT,
    version            TEXT,
    parent_instance_id TEXT,
    revision           INTEGER NOT NULL,
    lease_owner        TEXT,
    lease_expires_at   REAL
) WITHOUT ROWID;

CREATE INDEX instances_by_created ON instances (created_at, instance_id);
CREATE INDEX instances_by_owner ON instances (lease_owner) WHERE lease_owner IS NOT NULL;

CREATE TABLE history (
    instance_id TEXT NOT NULL,
    chunk       INTEGER NOT NULL,
    events      TEXT NOT NULL,
    PRIMARY KEY (instance_id, chunk)
) WITHOUT ROWID;

CREATE TABLE inbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id  TEXT NOT NULL,
    execution_id TEXT,
    visible_at   REAL NOT NULL,
    event        TEXT NOT NULL
);

CREATE INDEX inbox_by_instance ON inbox (instance_id, id);
CREATE INDEX inbox_by_visible ON inbox (visible_at);

CREATE TABLE tasks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id      TEXT NOT NULL,
    execution_id     TEXT NOT NULL,
    task_id          INTEGER NOT NULL,
    name             TEXT NOT NULL,
    input            TEXT,
    visible_at       REAL NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at REAL,
    UNIQUE (instance_id, execution_id, task_id)
);

CREATE INDEX tasks_unleased ON tasks (visible_at) WHERE lease_owner IS NULL;
CREATE INDEX tasks_by_owner ON tasks (lease_owner, lease_expires_at) WHERE lease_owner IS NOT NULL;

CREATE TABLE durable_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
