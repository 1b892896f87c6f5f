-- goqite queue schema, SQLite (test corpus transcription)
--
-- Project:    goqite v0.4.0
-- Repository: https://github.com/maragudk/goqite
-- File:       schema_sqlite.sql  (identical copy in jobs/schema_sqlite.sql; a PostgreSQL variant
--             is schema_postgres.sql, not used here)
-- Commit:     23697cc78af6e99a980ebc7a7f8a07d626ff8962 (2026-06-16); file identical to tag v0.4.0
--             (471f9d49ce356737fc756a287007d7b4c54c61e1); last change
--             39aac52b0ede02cdfc610e9dbda0a63b58f59d19 (2025-05-23)
-- Transcribed: 2026-12-03
--
-- Verbatim; nothing dropped. Needs SQLite >= 3.37 (STRICT tables).
-- All times are ISO-8601 UTC text with millisecond precision, 'YYYY-MM-DDTHH:MM:SS.SSSZ'
-- (strftime('%Y-%m-%dT%H:%M:%fZ') in defaults; Go side formats "2006-01-02T15:04:05.000Z07:00"
-- in UTC). No status column: a message is deleted when processed; `timeout` is when it becomes
-- (re)receivable, `received` counts receives (receive sets timeout = now + visibility timeout).
-- The trigger keeps `updated` current on every UPDATE (it fires after your own UPDATE too, so
-- seeded `updated` values are overwritten by later updates).

create table goqite (
  id text primary key default ('m_' || lower(hex(randomblob(16)))),
  created text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  updated text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  queue text not null,
  body blob not null,
  timeout text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  received integer not null default 0,
  priority integer not null default 0
) strict;

create trigger goqite_updated_timestamp after update on goqite begin
  update goqite set updated = strftime('%Y-%m-%dT%H:%M:%fZ') where id = old.id;
end;

create index goqite_queue_priority_created_idx on goqite (queue, priority desc, created);
