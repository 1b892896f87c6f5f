-- Oban job-queue schema (test corpus transcription)
--
-- Project:    Oban 2.23.x (Postgres migration version 14 = Oban.Migrations.Postgres @current_version)
-- Repository: https://github.com/oban-bg/oban
-- Files:      lib/oban/migrations/postgres.ex        (runner; default prefix "public";
--                                                     records the version as COMMENT ON TABLE)
--             lib/oban/migrations/postgres/v01.ex .. v14.ex  (the migrations, applied in order)
-- Commit:     2939e3134d0812195fbfcfe9a8e8d4bbd30bb23b (2026-08-18); lib/oban/migrations/ identical
--             to tag v2.23.1; last change cfbf2ef1b2070d05ffa5ad9926ae1934b0276eb1 (2026-03-28,
--             first released in v2.22.0)
-- Transcribed: 2026-12-03
--
-- Oban ships its schema as Ecto migrations (Elixir), not SQL. This file is the net result of
-- v01..v14 applied to the default prefix "public", written as the SQL Ecto's Postgres adapter
-- emits (ecto_sql lib/ecto/adapters/postgres/connection.ex, commit checked 2026-12-03):
--   :bigserial -> bigserial, :text -> text, :integer -> integer, :map -> jsonb,
--   {:array, :map} -> jsonb[], {:array, :text} -> text[],
--   :utc_datetime_usec -> timestamp  (= timestamp WITHOUT time zone; Oban stores UTC),
--   default [] on an array -> ARRAY[]::<type>[], default %{} -> '{}',
--   index(:oban_jobs, [a, b]) -> "oban_jobs_a_b_index", constraint(:oban_jobs, :x) -> "x".
-- Net effect of the migrations on oban_jobs:
--   v01 create type oban_job_state + table oban_jobs (+ notify trigger, dropped again in v12)
--   v02 worker_length / queue_length check constraints (its scheduled_at index dropped in v05)
--   v03 attempted_by text[]
--   v05 (queue, state, scheduled_at, id) index, dropped again in v08
--   v07 attempted_at index, dropped again in v10
--   v08 discarded_at, priority (default 0), tags (default []) + (state, queue, priority,
--       scheduled_at, id) index
--   v09 meta (default %{}), cancelled_at, enum value 'cancelled'
--   v10 args default %{}, priority NOT NULL, positive_max_attempts + attempt_range checks,
--       GIN indexes on args and meta (its priority_range check is replaced in v12)
--   v11 oban_peers table (not included here: leader election, not jobs)
--   v12 non_negative_priority check (created NOT VALID, `validate: false`); drops oban_notify
--       trigger and oban_jobs_notify() function
--   v13 (state, cancelled_at) and (state, discarded_at) indexes
--   v14 enum value 'suspended' BEFORE 'scheduled' (v01 of a fresh install already has it)
-- Dropped: nothing that survives v14 except the oban_peers table (UNLOGGED by default).
-- The DO-block guard around CREATE TYPE in v01 is replaced by a plain CREATE TYPE.

CREATE TYPE "public".oban_job_state AS ENUM (
  'available',
  'suspended',
  'scheduled',
  'executing',
  'retryable',
  'completed',
  'discarded',
  'cancelled'
);

CREATE TABLE IF NOT EXISTS "public"."oban_jobs" (
  "id" bigserial,
  "state" "public".oban_job_state NOT NULL DEFAULT 'available',
  "queue" text NOT NULL DEFAULT 'default',
  "worker" text NOT NULL,
  "args" jsonb NOT NULL DEFAULT '{}',
  "errors" jsonb[] NOT NULL DEFAULT ARRAY[]::jsonb[],
  "attempt" integer NOT NULL DEFAULT 0,
  "max_attempts" integer NOT NULL DEFAULT 20,
  "inserted_at" timestamp NOT NULL DEFAULT timezone('UTC', now()),
  "scheduled_at" timestamp NOT NULL DEFAULT timezone('UTC', now()),
  "attempted_at" timestamp,
  "completed_at" timestamp,
  "attempted_by" text[],                    -- v03
  "discarded_at" timestamp,                 -- v08
  "priority" integer NOT NULL DEFAULT 0,    -- v08 (+ NOT NULL in v10)
  "tags" text[] DEFAULT ARRAY[]::text[],    -- v08
  "meta" jsonb DEFAULT '{}',                -- v09
  "cancelled_at" timestamp,                 -- v09
  PRIMARY KEY ("id")
);

-- v02
ALTER TABLE "public"."oban_jobs" ADD CONSTRAINT "worker_length" CHECK (char_length(worker) > 0 AND char_length(worker) < 128);
ALTER TABLE "public"."oban_jobs" ADD CONSTRAINT "queue_length" CHECK (char_length(queue) > 0 AND char_length(queue) < 128);

-- v08
CREATE INDEX IF NOT EXISTS "oban_jobs_state_queue_priority_scheduled_at_id_index" ON "public"."oban_jobs" ("state", "queue", "priority", "scheduled_at", "id");

-- v10
ALTER TABLE "public"."oban_jobs" ADD CONSTRAINT "positive_max_attempts" CHECK (max_attempts > 0);
ALTER TABLE "public"."oban_jobs" ADD CONSTRAINT "attempt_range" CHECK (attempt between 0 and max_attempts);
CREATE INDEX IF NOT EXISTS "oban_jobs_args_index" ON "public"."oban_jobs" USING gin ("args");
CREATE INDEX IF NOT EXISTS "oban_jobs_meta_index" ON "public"."oban_jobs" USING gin ("meta");

-- v12
ALTER TABLE "public"."oban_jobs" ADD CONSTRAINT "non_negative_priority" CHECK (priority >= 0) NOT VALID;

-- v13
CREATE INDEX IF NOT EXISTS "oban_jobs_state_cancelled_at_index" ON "public"."oban_jobs" ("state", "cancelled_at");
CREATE INDEX IF NOT EXISTS "oban_jobs_state_discarded_at_index" ON "public"."oban_jobs" ("state", "discarded_at");

-- postgres.ex record_version/2: how Oban (and Oban Web) tell the installed migration version
COMMENT ON TABLE "public".oban_jobs IS '14';
