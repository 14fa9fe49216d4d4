-- Totals by outside phone number (the sibling report): one row per number in E.164 (the raw
-- number when it could not be normalised; NULL for calls with none), shown as most often dialled,
-- with the identities holding it. Internal calls have no outside number and are left out.
-- Parameters $1-$5 as in totals_raw.sql; $6 order: 'number', 'calls' (most first) or 'talk'.
WITH grouped AS (
    SELECT coalesce(c.external_number,
                    nullif(CASE WHEN c.direction = 'incoming' THEN c.caller ELSE c.callee END, '')) AS number_key,
           mode() WITHIN GROUP (ORDER BY CASE WHEN c.direction = 'incoming' THEN c.caller ELSE c.callee END) AS dialled,
           count(*)::bigint AS calls,
           count(*) FILTER (WHERE c.direction = 'incoming' AND c.status <> 'missed')::bigint AS incoming,
           coalesce(sum(c.talk_seconds) FILTER (WHERE c.direction = 'incoming'), 0)::numeric AS incoming_talk,
           count(*) FILTER (WHERE c.direction = 'outgoing')::bigint AS outgoing,
           coalesce(sum(c.talk_seconds) FILTER (WHERE c.direction = 'outgoing'), 0)::numeric AS outgoing_talk,
           count(*) FILTER (WHERE c.status = 'missed')::bigint AS missed,
           0::bigint AS internal,
           0::numeric AS internal_talk,
           count(*) FILTER (WHERE c.status = 'answered')::bigint AS answered,
           coalesce(sum(c.wait_seconds), 0)::numeric AS wait_seconds,
           coalesce(sum(c.transfer_count), 0)::bigint AS transfers
    FROM calls c
    WHERE c.start_time >= $1 AND c.start_time < $2
      AND c.direction <> 'internal'
      AND c.system_id = ANY($3::bigint[])
      AND (CASE WHEN c.status = 'missed' THEN 'missed' ELSE c.direction END) = ANY($5::text[])
      AND ($4::bigint IS NULL OR EXISTS (
            SELECT 1 FROM extension_assignments a
            WHERE a.user_id = $4 AND a.system_id = c.system_id
              AND a.valid_from <= c.start_time AND (a.valid_to IS NULL OR a.valid_to > c.start_time)
              AND (a.extension = ANY(CASE WHEN c.status = 'answered' THEN c.agents ELSE c.rang END)
                   OR (c.direction <> 'incoming' AND a.extension = c.caller))))
    GROUP BY 1
)
SELECT g.*, idn.names AS identity_names
FROM grouped g
LEFT JOIN LATERAL (
    SELECT array_agg(i.name ORDER BY i.name, i.id) AS names
    FROM identity_numbers n JOIN identities i ON i.id = n.identity_id
    WHERE n.number_e164 = g.number_key
) idn ON true
ORDER BY CASE WHEN $6::text = 'calls' THEN g.calls END DESC NULLS LAST,
         CASE WHEN $6::text = 'talk' THEN g.incoming_talk + g.outgoing_talk END DESC NULLS LAST,
         g.number_key NULLS FIRST
