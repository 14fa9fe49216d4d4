-- The identities holding the outside numbers of a report's calls, one row per number (E.164),
-- read once before the rows are streamed. Parameters $1-$5 as in details_copy.sql.
SELECT n.number_e164,
       array_agg(i.id ORDER BY i.name, i.id) AS ids,
       array_agg(i.name ORDER BY i.name, i.id) AS names,
       array_agg(coalesce(i.profile_url, '') ORDER BY i.name, i.id) AS urls
FROM identity_numbers n JOIN identities i ON i.id = n.identity_id
WHERE n.number_e164 IN (
    SELECT c.external_number FROM calls c
    WHERE c.start_time >= $1 AND c.start_time < $2 AND c.external_number IS NOT NULL
      AND c.system_id = ANY($3::bigint[])
      AND (CASE WHEN c.status = 'missed' THEN 'missed' ELSE c.direction END) = ANY($5::text[])
      AND ($4::bigint IS NULL OR EXISTS (
            SELECT 1 FROM extension_assignments a
            WHERE a.user_id = $4 AND a.system_id = c.system_id
              AND a.valid_from <= c.start_time AND (a.valid_to IS NULL OR a.valid_to > c.start_time)
              AND (a.extension = ANY(CASE WHEN c.status = 'answered' THEN c.agents ELSE c.rang END)
                   OR (c.direction <> 'incoming' AND a.extension = c.caller)))))
GROUP BY n.number_e164
