-- The call rows of the call-details report, in time order, with the identities whose numbers
-- match the call's outside number (E.164). Agent names are looked up by the caller (assignments
-- are few and are read once per report).
-- $1 period start, $2 period end (timestamptz, [start, end))
-- $3 telephone system ids (bigint[])
-- $4 the agent's user id (bigint; NULL: any agent)
-- $5 call kinds (text[] of incoming, outgoing, missed, internal)
-- $6 how many rows (bigint; NULL: all), $7 rows to skip (bigint)
SELECT c.id, c.call_id, c.system_id, c.start_time, c.direction, c.status, c.reason,
       c.caller, c.caller_name, c.callee, c.external_number,
       c.wait_seconds, c.talk_seconds, c.transfer_count,
       CASE WHEN c.status = 'answered' THEN c.agents ELSE c.rang END AS chain,
       idn.ids AS identity_ids, idn.names AS identity_names, idn.urls AS identity_urls
FROM calls c
LEFT JOIN LATERAL (
    SELECT array_agg(i.id ORDER BY i.name, i.id) AS ids,
           array_agg(i.name ORDER BY i.name, i.id) AS names,
           array_agg(coalesce(i.profile_url, '') ORDER BY i.name, i.id) AS urls
    FROM identity_numbers n JOIN identities i ON i.id = n.identity_id
    WHERE n.number_e164 = c.external_number
) idn ON c.external_number IS NOT NULL
WHERE c.start_time >= $1 AND c.start_time < $2
  AND c.system_id = ANY($3::bigint[])
  AND (CASE WHEN c.status = 'missed' THEN 'missed' ELSE c.direction END) = ANY($5::text[])
  AND ($4::bigint IS NULL OR EXISTS (
        SELECT 1 FROM extension_assignments a
        WHERE a.user_id = $4 AND a.system_id = c.system_id
          AND a.valid_from <= c.start_time AND (a.valid_to IS NULL OR a.valid_to > c.start_time)
          AND (a.extension = ANY(CASE WHEN c.status = 'answered' THEN c.agents ELSE c.rang END)
               OR (c.direction <> 'incoming' AND a.extension = c.caller))))
ORDER BY c.start_time, c.id
LIMIT $6 OFFSET $7
