-- pg-boss job-queue schema (test corpus transcription)
--
-- Project:    pg-boss 12.27.0 (schema version 37)
-- Repository: https://github.com/timgit/pg-boss
-- Commit:     55ee32f66f0bf683ff823c0ad8be2056dbc91ce4 (2026-08-03, "patch releases for pgboss 12.27";
--             package.json version 12.27.0, "pgboss": {"schema": 37})
-- Files:      src/plans.ts  -- create(), createEnumJobState(), createTableQueue(), createTableJob(),
--                              createPrimaryKeyJob(), createQueueForeignKeyJob*(), createIndexJob*(),
--                              createCheckConstraintKeyStrictFifo(), createTableJobIndexes()
--             src/schema.json -- generated manifest, "nonPartitioned" section (used to confirm
--                              column types/defaults, constraints and index definitions)
-- Transcribed: 2026-12-03
--
-- pg-boss keeps everything in its own schema (DEFAULT_SCHEMA = 'pgboss'), so the schema and
-- qualified names are kept here.
--
-- Partitioning: by default pg-boss creates pgboss.job as `PARTITION BY LIST (name)` with a DEFAULT
-- partition pgboss.job_common (and one partition per queue created with {partition: true}).
-- pg-boss itself ships a plain-table variant, selected with the `noTablePartitioning` option:
-- create() then calls createTableJob(schema, true) (no PARTITION BY clause) and
-- createTableJobIndexes(), which puts the constraints/indexes directly on pgboss.job.
-- This file is that variant with default options (noDeferrableConstraints = false, so the
-- foreign keys stay DEFERRABLE INITIALLY DEFERRED, as in schema.json "nonPartitioned").
--
-- Dropped (not needed for a standalone table definition / not table DDL):
--   * partition helpers job_table_format(), job_table_run(), job_table_run_async() and the
--     job_common partition (partitioned mode only)
--   * the API functions create_queue() and delete_queue()
--   * the other pg-boss tables: version, schedule, subscription, bam, warning, queue_stats,
--     job_dependency (and their indexes), and the `INSERT INTO version` row
--   * the advisory-lock wrapper (locked()) that create() wraps around the statements
-- Kept: pgboss.queue, because pgboss.job has foreign keys to it (insert a queue row before
-- inserting jobs for that queue name).
--
-- keep_until default: plans.ts writes `now() + interval '1209600'` (QUEUE_DEFAULTS.retention_seconds,
-- 14 days in seconds); PostgreSQL stores it as (now() + '336:00:00'::interval), as schema.json shows.

CREATE SCHEMA IF NOT EXISTS pgboss;

-- ENUM definition order is important (pg-boss compares states with < and <=)
CREATE TYPE pgboss.job_state AS ENUM (
  'created',
  'retry',
  'active',
  'completed',
  'cancelled',
  'failed'
);

CREATE TABLE pgboss.queue (
  name text NOT NULL,
  policy text NOT NULL,
  retry_limit int NOT NULL,
  retry_delay int NOT NULL,
  retry_backoff bool NOT NULL,
  retry_delay_max int,
  expire_seconds int NOT NULL,
  retention_seconds int NOT NULL,
  deletion_seconds int NOT NULL,
  dead_letter text REFERENCES pgboss.queue (name) CHECK (dead_letter IS DISTINCT FROM name),
  partition bool NOT NULL,
  table_name text NOT NULL,
  deferred_count int NOT NULL default 0,
  queued_count int NOT NULL default 0,
  ready_count int NOT NULL default 0,
  warning_queued int NOT NULL default 0,
  active_count int NOT NULL default 0,
  failed_count int NOT NULL default 0,
  total_count int NOT NULL default 0,
  ready_history int[] NOT NULL default '{}',
  heartbeat_seconds int,
  notify bool NOT NULL DEFAULT false,
  singletons_active text[],
  monitor_on timestamp with time zone,
  maintain_on timestamp with time zone,
  created_on timestamp with time zone not null default now(),
  updated_on timestamp with time zone not null default now(),
  PRIMARY KEY (name)
);

CREATE TABLE pgboss.job (
  id uuid not null default gen_random_uuid(),
  name text not null,
  priority integer not null default(0),
  data jsonb,
  state pgboss.job_state not null default 'created',
  retry_limit integer not null default 2,
  retry_count integer not null default 0,
  retry_delay integer not null default 0,
  retry_backoff boolean not null default false,
  retry_delay_max integer,
  expire_seconds int not null default 900,
  deletion_seconds int not null default 604800,
  singleton_key text,
  singleton_on timestamp without time zone,
  group_id text,
  group_tier text,
  start_after timestamp with time zone not null default now(),
  created_on timestamp with time zone not null default now(),
  started_on timestamp with time zone,
  completed_on timestamp with time zone,
  keep_until timestamp with time zone NOT NULL default now() + interval '1209600',
  output jsonb,
  dead_letter text,
  policy text,
  heartbeat_on timestamp with time zone,
  heartbeat_seconds int,
  blocked boolean not null default false,
  blocking boolean not null default false,
  pending_dependencies int not null default 0,
  source_name text,
  source_id uuid,
  source_created_on timestamp with time zone,
  source_retry_count int
);  -- default (partitioned) mode appends: PARTITION BY LIST (name)

ALTER TABLE pgboss.job ADD PRIMARY KEY (name, id);

ALTER TABLE pgboss.job ADD CONSTRAINT q_fkey FOREIGN KEY (name) REFERENCES pgboss.queue (name) ON DELETE RESTRICT DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE pgboss.job ADD CONSTRAINT dlq_fkey FOREIGN KEY (dead_letter) REFERENCES pgboss.queue (name) ON DELETE RESTRICT DEFERRABLE INITIALLY DEFERRED;
CREATE UNIQUE INDEX job_i1 ON pgboss.job (name, COALESCE(singleton_key, '')) WHERE state = 'created' AND policy = 'short';
CREATE UNIQUE INDEX job_i2 ON pgboss.job (name, COALESCE(singleton_key, '')) WHERE state = 'active' AND policy = 'singleton';
CREATE UNIQUE INDEX job_i3 ON pgboss.job (name, state, COALESCE(singleton_key, '')) WHERE state <= 'active' AND policy = 'stately';
CREATE UNIQUE INDEX job_i6 ON pgboss.job (name, COALESCE(singleton_key, '')) WHERE state <= 'active' AND policy = 'exclusive';
CREATE UNIQUE INDEX job_i8 ON pgboss.job (name, singleton_key) WHERE state IN ('active', 'retry', 'failed') AND policy = 'key_strict_fifo';
ALTER TABLE pgboss.job ADD CONSTRAINT job_key_strict_fifo_singleton_key_check CHECK (NOT (policy = 'key_strict_fifo' AND singleton_key IS NULL));
CREATE UNIQUE INDEX job_i4 ON pgboss.job (name, singleton_on, COALESCE(singleton_key, '')) WHERE state <> 'cancelled' AND singleton_on IS NOT NULL;
CREATE INDEX job_i5 ON pgboss.job (name, start_after) WHERE state < 'active' AND NOT blocked;
CREATE INDEX job_i7 ON pgboss.job (name, group_id) WHERE state = 'active' AND group_id IS NOT NULL;
CREATE INDEX job_i9 ON pgboss.job (name, id) WHERE blocking AND state = 'completed';
