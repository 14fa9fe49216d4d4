-- One call's turns in order, each with the agent assigned to its extension at the time.
-- $1 the call's primary key (calls.id)
SELECT g.seq, g.extension, g.began_by, g.ring_start, g.answer_time, g.end_time, g.talk_seconds, g.channel,
       coalesce(nullif(u.full_name, ''), u.username) AS agent_name
FROM call_segments g
JOIN calls c ON c.id = g.call_pk
LEFT JOIN LATERAL (
    SELECT a.user_id FROM extension_assignments a
    WHERE a.system_id = c.system_id AND a.extension = g.extension
      AND a.valid_from <= g.answer_time AND (a.valid_to IS NULL OR a.valid_to > g.answer_time)
    ORDER BY a.valid_from DESC LIMIT 1
) who ON true
LEFT JOIN users u ON u.id = who.user_id
WHERE g.call_pk = $1
ORDER BY g.seq
