-- Totals by agent (the sibling report): each call counts once, for the agent who took it (the
-- first answering extension of an incoming call) or placed it (the calling extension), as
-- assigned at the call's time; calls with no such agent (all missed calls) form the row whose
-- user_id is NULL. Parameters $1-$5 as in totals_raw.sql.
WITH attributed AS (
    SELECT c.*, CASE WHEN c.direction = 'incoming' THEN c.agents[1] ELSE nullif(c.caller, '') END AS agent_extension
    FROM calls c
    WHERE c.start_time >= $1 AND c.start_time < $2
      AND c.system_id = ANY($3::bigint[])
      AND (CASE WHEN c.status = 'missed' THEN 'missed' ELSE c.direction END) = ANY($5::text[])
      AND ($4::bigint IS NULL OR EXISTS (
            SELECT 1 FROM extension_assignments a
            WHERE a.user_id = $4 AND a.system_id = c.system_id
              AND a.valid_from <= c.start_time AND (a.valid_to IS NULL OR a.valid_to > c.start_time)
              AND (a.extension = ANY(CASE WHEN c.status = 'answered' THEN c.agents ELSE c.rang END)
                   OR (c.direction <> 'incoming' AND a.extension = c.caller))))
)
SELECT u.id AS user_id, u.username, coalesce(nullif(u.full_name, ''), u.username) AS name,
       count(*)::bigint AS calls,
       count(*) FILTER (WHERE c.direction = 'incoming' AND c.status <> 'missed')::bigint AS incoming,
       coalesce(sum(c.talk_seconds) FILTER (WHERE c.direction = 'incoming'), 0)::numeric AS incoming_talk,
       count(*) FILTER (WHERE c.direction = 'outgoing')::bigint AS outgoing,
       coalesce(sum(c.talk_seconds) FILTER (WHERE c.direction = 'outgoing'), 0)::numeric AS outgoing_talk,
       count(*) FILTER (WHERE c.status = 'missed')::bigint AS missed,
       count(*) FILTER (WHERE c.direction = 'internal')::bigint AS internal,
       coalesce(sum(c.talk_seconds) FILTER (WHERE c.direction = 'internal'), 0)::numeric AS internal_talk,
       count(*) FILTER (WHERE c.status = 'answered')::bigint AS answered,
       coalesce(sum(c.wait_seconds), 0)::numeric AS wait_seconds,
       coalesce(sum(c.transfer_count), 0)::bigint AS transfers
FROM attributed c
LEFT JOIN LATERAL (
    SELECT a.user_id FROM extension_assignments a
    WHERE a.system_id = c.system_id AND a.extension = c.agent_extension
      AND a.valid_from <= c.start_time AND (a.valid_to IS NULL OR a.valid_to > c.start_time)
    ORDER BY a.valid_from DESC LIMIT 1
) who ON true
LEFT JOIN users u ON u.id = who.user_id
GROUP BY u.id, u.username, u.full_name
ORDER BY u.id IS NOT NULL, 3, u.id
