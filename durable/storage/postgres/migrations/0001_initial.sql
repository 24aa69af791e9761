-- Initial schema of one task hub (every table lives in the hub's own PostgreSQL schema, chosen
-- by search_path). Times are UTC epoch seconds (double precision), as in SQLite; payloads are
-- JSON text. Instance IDs use the "C" collation so ordering and prefix filters compare bytes,
-- the same as SQLite, and continuation tokens mean the same thing on both backends.
-- Every table carries instance_id: that is the distribution column if the hub is ever sharded
-- (see docs/scale-out.md).

CREATE TABLE instances (
    instance_id        text COLLATE "C" PRIMARY KEY,
    name               text NOT NULL,
    execution_id       text NOT NULL,
    status             text NOT NULL,
    created_at         double precision NOT NULL,
    updated_at         double precision NOT NULL,
    completed_at       double precision,
    input              text,
    output             text,
    custom_status      text,
    failure            text,
    version            text,
    parent_instance_id text,
    revision           bigint NOT NULL,
    lease_owner        text,
    lease_expires_at   double precision
);

CREATE INDEX instances_by_created ON instances (created_at, instance_id);
CREATE INDEX instances_by_owner ON instances (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX instances_by_status ON instances (status, created_at);

CREATE TABLE history (
    instance_id text COLLATE "C" NOT NULL,
    chunk       bigint NOT NULL,
    events      text NOT NULL,
    PRIMARY KEY (instance_id, chunk)
);

CREATE TABLE inbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id  text COLLATE "C" NOT NULL,
    execution_id text,
    visible_at   double precision NOT NULL,
    event        text NOT NULL
);

CREATE INDEX inbox_by_instance ON inbox (instance_id, id);
CREATE INDEX inbox_by_visible ON inbox (visible_at);

CREATE TABLE tasks (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id      text COLLATE "C" NOT NULL,
    execution_id     text NOT NULL,
    task_id          integer NOT NULL,
    name             text NOT NULL,
    input            text,
    visible_at       double precision NOT NULL,
    attempt          integer NOT NULL DEFAULT 0,
    lease_owner      text,
    lease_expires_at double precision,
    UNIQUE (instance_id, execution_id, task_id)
);

CREATE INDEX tasks_unleased ON tasks (visible_at) WHERE lease_owner IS NULL;
CREATE INDEX tasks_by_owner ON tasks (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE INDEX tasks_by_expiry ON tasks (lease_expires_at) WHERE lease_owner IS NOT NULL;

CREATE TABLE durable_settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);
