-- Laravel database-queue schema (test corpus transcription)
--
-- Project:    laravel/framework 13.26.1 (Illuminate\Foundation\Application::VERSION)
-- Repository: https://github.com/laravel/framework
-- Files:      src/Illuminate/Queue/Console/stubs/jobs.stub         (`php artisan make:queue-table`,
--                                                                  table `jobs`)
--             src/Illuminate/Queue/Console/stubs/failed_jobs.stub  (`make:queue-failed-table`,
--                                                                  table `failed_jobs`; last change
--                                                                  5e6264010f72, 2026-05-11)
--             src/Illuminate/Queue/Console/stubs/batches.stub      (`make:queue-batches-table`,
--                                                                  table `job_batches`)
--             src/Illuminate/Database/Schema/Grammars/PostgresGrammar.php, Blueprint.php, Builder.php
--             (how the Blueprint calls are compiled for PostgreSQL)
-- Commit:     bd71b45fbb7e672957bf6ff61baddefe15fbca6a (2026-08-21); stubs and PostgresGrammar
--             identical to tag v13.26.1
-- Transcribed: 2026-12-03
--
-- The stubs are PHP Blueprint migrations; this is the SQL Laravel's PostgresGrammar emits for
-- them (public schema, default Builder::$defaultStringLength = 255 and
-- Builder::$defaultTimePrecision = 0):
--   bigIncrements/id() -> bigserial primary key; string -> varchar(255); longText/mediumText -> text;
--   unsignedSmallInteger -> smallint; unsignedInteger/integer -> integer (PostgreSQL has no
--   unsigned types); timestamp()->useCurrent() -> timestamp(0) without time zone default
--   CURRENT_TIMESTAMP; columns are `not null` unless ->nullable(); index names are
--   <table>_<columns>_index / _unique; string('id')->primary() -> `add primary key`.
-- Nothing dropped. Timestamps in `jobs` and `job_batches` are integer unix epoch seconds;
-- failed_jobs.failed_at is a timestamp without time zone in the app timezone (UTC by default).

-- jobs.stub
create table "jobs" ("id" bigserial not null primary key, "queue" varchar(255) not null, "payload" text not null, "attempts" smallint not null, "reserved_at" integer null, "available_at" integer not null, "created_at" integer not null);
create index "jobs_queue_index" on "jobs" ("queue");

-- failed_jobs.stub
create table "failed_jobs" ("id" bigserial not null primary key, "uuid" varchar(255) not null, "connection" varchar(255) not null, "queue" varchar(255) not null, "payload" text not null, "exception" text not null, "failed_at" timestamp(0) without time zone not null default CURRENT_TIMESTAMP);
alter table "failed_jobs" add constraint "failed_jobs_uuid_unique" unique ("uuid");
create index "failed_jobs_connection_queue_failed_at_index" on "failed_jobs" ("connection", "queue", "failed_at");

-- batches.stub
create table "job_batches" ("id" varchar(255) not null, "name" varchar(255) not null, "total_jobs" integer not null, "pending_jobs" integer not null, "failed_jobs" integer not null, "failed_job_ids" text not null, "options" text null, "cancelled_at" integer null, "created_at" integer not null, "finished_at" integer null);
alter table "job_batches" add primary key ("id");
