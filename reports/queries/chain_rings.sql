-- Every extension that rang for one call, in order, with the agent assigned to it at the time.
-- $1 the call's primary key (calls.id)
SELECT r.seq, r.extension, r.start_time, r.end_time, r.outcome,
       coalesce(nullif(u.full_name, ''), u.username) AS agent_name
FROM call_ring_attempts r
JOIN calls c ON c.id = r.call_pk
LEFT JOIN LATERAL (
    SELECT a.user_id FROM extension_assignments a
    WHERE a.system_id = c.system_id AND a.extension = r.extension
      AND a.valid_from <= r.start_time AND (a.valid_to IS NULL OR a.valid_to > r.start_time)
    ORDER BY a.valid_from DESC LIMIT 1
) who ON true
LEFT JOIN users u ON u.id = who.user_id
WHERE r.call_pk = $1
ORDER BY r.seq
