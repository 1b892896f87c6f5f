-- Rails Solid Queue schema (test corpus transcription)
--
-- Project:    solid_queue 1.5.0
-- Repository: https://github.com/rails/solid_queue
-- File:       lib/generators/solid_queue/install/templates/db/queue_schema.rb
--             (ActiveRecord::Schema[7.1].define(version: 1); copied to db/queue_schema.rb by
--             `bin/rails solid_queue:install` and loaded with db:prepare)
-- Commit:     29e818d9c1181195736ffc5d7c1d1c03757b7752 (2026-07-24); file identical to tag v1.5.0;
--             last change eeb0d47471723ec6e093bc9e7e001839258fca4e (2024-09-22)
-- Transcribed: 2026-12-03
--
-- The schema is a Ruby schema file; this is the SQL ActiveRecord's PostgreSQL adapter
-- generates for it, in the public schema (type mapping cross-checked against third-party
-- `pg_dump` structure.sql files of apps running Solid Queue on PostgreSQL 15):
--   create_table (implicit id)   -> id bigserial primary key
--   t.string                     -> character varying   (limit: 2048 -> character varying(2048))
--   t.datetime (Schema[7.1])     -> timestamp(6) without time zone  (Rails writes UTC by default)
--   t.text / t.integer / t.bigint / t.boolean -> text / integer / bigint / boolean
--   add_foreign_key              -> fk_rails_<first 10 hex of sha256("<table>_job_id_fk")>
-- `force: :cascade` (DROP TABLE IF EXISTS ... CASCADE before each CREATE) is omitted, since
-- the file targets an empty database. Nothing else dropped: all 11 tables, indexes and
-- foreign keys of queue_schema.rb are here (tables in the file's alphabetical order).
-- Job state is not a column: a job is ready / scheduled / blocked / claimed (running) / failed
-- according to which *_executions table holds a row for it; finished_at is set on success
-- (finished jobs are kept only while config.solid_queue.preserve_finished_jobs is true).

CREATE TABLE "solid_queue_blocked_executions" (
  "id" bigserial primary key,
  "job_id" bigint NOT NULL,
  "queue_name" character varying NOT NULL,
  "priority" integer DEFAULT 0 NOT NULL,
  "concurrency_key" character varying NOT NULL,
  "expires_at" timestamp(6) without time zone NOT NULL,
  "created_at" timestamp(6) without time zone NOT NULL
);
CREATE INDEX "index_solid_queue_blocked_executions_for_release" ON "solid_queue_blocked_executions" ("concurrency_key", "priority", "job_id");
CREATE INDEX "index_solid_queue_blocked_executions_for_maintenance" ON "solid_queue_blocked_executions" ("expires_at", "concurrency_key");
CREATE UNIQUE INDEX "index_solid_queue_blocked_executions_on_job_id" ON "solid_queue_blocked_executions" ("job_id");

CREATE TABLE "solid_queue_claimed_executions" (
  "id" bigserial primary key,
  "job_id" bigint NOT NULL,
  "process_id" bigint,
  "created_at" timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX "index_solid_queue_claimed_executions_on_job_id" ON "solid_queue_claimed_executions" ("job_id");
CREATE INDEX "index_solid_queue_claimed_executions_on_process_id_and_job_id" ON "solid_queue_claimed_executions" ("process_id", "job_id");

CREATE TABLE "solid_queue_failed_executions" (
  "id" bigserial primary key,
  "job_id" bigint NOT NULL,
  "error" text,
  "created_at" timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX "index_solid_queue_failed_executions_on_job_id" ON "solid_queue_failed_executions" ("job_id");

CREATE TABLE "solid_queue_jobs" (
  "id" bigserial primary key,
  "queue_name" character varying NOT NULL,
  "class_name" character varying NOT NULL,
  "arguments" text,
  "priority" integer DEFAULT 0 NOT NULL,
  "active_job_id" character varying,
  "scheduled_at" timestamp(6) without time zone,
  "finished_at" timestamp(6) without time zone,
  "concurrency_key" character varying,
  "created_at" timestamp(6) without time zone NOT NULL,
  "updated_at" timestamp(6) without time zone NOT NULL
);
CREATE INDEX "index_solid_queue_jobs_on_active_job_id" ON "solid_queue_jobs" ("active_job_id");
CREATE INDEX "index_solid_queue_jobs_on_class_name" ON "solid_queue_jobs" ("class_name");
CREATE INDEX "index_solid_queue_jobs_on_finished_at" ON "solid_queue_jobs" ("finished_at");
CREATE INDEX "index_solid_queue_jobs_for_filtering" ON "solid_queue_jobs" ("queue_name", "finished_at");
CREATE INDEX "index_solid_queue_jobs_for_alerting" ON "solid_queue_jobs" ("scheduled_at", "finished_at");

CREATE TABLE "solid_queue_pauses" (
  "id" bigserial primary key,
  "queue_name" character varying NOT NULL,
  "created_at" timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX "index_solid_queue_pauses_on_queue_name" ON "solid_queue_pauses" ("queue_name");

CREATE TABLE "solid_queue_processes" (
  "id" bigserial primary key,
  "kind" character varying NOT NULL,
  "last_heartbeat_at" timestamp(6) without time zone NOT NULL,
  "supervisor_id" bigint,
  "pid" integer NOT NULL,
  "hostname" character varying,
  "metadata" text,
  "created_at" timestamp(6) without time zone NOT NULL,
  "name" character varying NOT NULL
);
CREATE INDEX "index_solid_queue_processes_on_last_heartbeat_at" ON "solid_queue_processes" ("last_heartbeat_at");
CREATE UNIQUE INDEX "index_solid_queue_processes_on_name_and_supervisor_id" ON "solid_queue_processes" ("name", "supervisor_id");
CREATE INDEX "index_solid_queue_processes_on_supervisor_id" ON "solid_queue_processes" ("supervisor_id");

CREATE TABLE "solid_queue_ready_executions" (
  "id" bigserial primary key,
  "job_id" bigint NOT NULL,
  "queue_name" character varying NOT NULL,
  "priority" integer DEFAULT 0 NOT NULL,
  "created_at" timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX "index_solid_queue_ready_executions_on_job_id" ON "solid_queue_ready_executions" ("job_id");
CREATE INDEX "index_solid_queue_poll_all" ON "solid_queue_ready_executions" ("priority", "job_id");
CREATE INDEX "index_solid_queue_poll_by_queue" ON "solid_queue_ready_executions" ("queue_name", "priority", "job_id");

CREATE TABLE "solid_queue_recurring_executions" (
  "id" bigserial primary key,
  "job_id" bigint NOT NULL,
  "task_key" character varying NOT NULL,
  "run_at" timestamp(6) without time zone NOT NULL,
  "created_at" timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX "index_solid_queue_recurring_executions_on_job_id" ON "solid_queue_recurring_executions" ("job_id");
CREATE UNIQUE INDEX "index_solid_queue_recurring_executions_on_task_key_and_run_at" ON "solid_queue_recurring_executions" ("task_key", "run_at");

CREATE TABLE "solid_queue_recurring_tasks" (
  "id" bigserial primary key,
  "key" character varying NOT NULL,
  "schedule" character varying NOT NULL,
  "command" character varying(2048),
  "class_name" character varying,
  "arguments" text,
  "queue_name" character varying,
  "priority" integer DEFAULT 0,
  "static" boolean DEFAULT true NOT NULL,
  "description" text,
  "created_at" timestamp(6) without time zone NOT NULL,
  "updated_at" timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX "index_solid_queue_recurring_tasks_on_key" ON "solid_queue_recurring_tasks" ("key");
CREATE INDEX "index_solid_queue_recurring_tasks_on_static" ON "solid_queue_recurring_tasks" ("static");

CREATE TABLE "solid_queue_scheduled_executions" (
  "id" bigserial primary key,
  "job_id" bigint NOT NULL,
  "queue_name" character varying NOT NULL,
  "priority" integer DEFAULT 0 NOT NULL,
  "scheduled_at" timestamp(6) without time zone NOT NULL,
  "created_at" timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX "index_solid_queue_scheduled_executions_on_job_id" ON "solid_queue_scheduled_executions" ("job_id");
CREATE INDEX "index_solid_queue_dispatch_all" ON "solid_queue_scheduled_executions" ("scheduled_at", "priority", "job_id");

CREATE TABLE "solid_queue_semaphores" (
  "id" bigserial primary key,
  "key" character varying NOT NULL,
  "value" integer DEFAULT 1 NOT NULL,
  "expires_at" timestamp(6) without time zone NOT NULL,
  "created_at" timestamp(6) without time zone NOT NULL,
  "updated_at" timestamp(6) without time zone NOT NULL
);
CREATE INDEX "index_solid_queue_semaphores_on_expires_at" ON "solid_queue_semaphores" ("expires_at");
CREATE INDEX "index_solid_queue_semaphores_on_key_and_value" ON "solid_queue_semaphores" ("key", "value");
CREATE UNIQUE INDEX "index_solid_queue_semaphores_on_key" ON "solid_queue_semaphores" ("key");

ALTER TABLE "solid_queue_blocked_executions" ADD CONSTRAINT "fk_rails_4cd34e2228" FOREIGN KEY ("job_id") REFERENCES "solid_queue_jobs" ("id") ON DELETE CASCADE;
ALTER TABLE "solid_queue_claimed_executions" ADD CONSTRAINT "fk_rails_9cfe4d4944" FOREIGN KEY ("job_id") REFERENCES "solid_queue_jobs" ("id") ON DELETE CASCADE;
ALTER TABLE "solid_queue_failed_executions" ADD CONSTRAINT "fk_rails_39bbc7a631" FOREIGN KEY ("job_id") REFERENCES "solid_queue_jobs" ("id") ON DELETE CASCADE;
ALTER TABLE "solid_queue_ready_executions" ADD CONSTRAINT "fk_rails_81fcbd66af" FOREIGN KEY ("job_id") REFERENCES "solid_queue_jobs" ("id") ON DELETE CASCADE;
ALTER TABLE "solid_queue_recurring_executions" ADD CONSTRAINT "fk_rails_318a5533ed" FOREIGN KEY ("job_id") REFERENCES "solid_queue_jobs" ("id") ON DELETE CASCADE;
ALTER TABLE "solid_queue_scheduled_executions" ADD CONSTRAINT "fk_rails_c4316f352d" FOREIGN KEY ("job_id") REFERENCES "solid_queue_jobs" ("id") ON DELETE CASCADE;
