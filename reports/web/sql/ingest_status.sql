-- Per telephone system: the daemon's bookkeeping and the calls started today in its own time zone.
SELECT s.id, s.name, s.title, b.name AS branch, coalesce(nullif(b.title, ''), b.name) AS branch_title,
       s.timezone, st.last_event_at, st.last_call_stored_at, coalesce(st.calls_stored, 0) AS calls_stored,
       st.checkpoint, st.updated_at,
       (SELECT count(*) FROM calls c
         WHERE c.system_id = s.id
           AND c.start_time >= date_trunc('day', now() AT TIME ZONE s.timezone) AT TIME ZONE s.timezone
       ) AS calls_today
FROM telephone_systems s
JOIN branches b ON b.id = s.branch_id
LEFT JOIN ingest_state st ON st.system_id = s.id
ORDER BY b.name, s.name
