-- Extension assignments (with user names) of some (telephone system, extension) pairs: the agents
-- of one page of call rows, rather than every assignment of the report's systems.
-- $1 telephone system ids (bigint[]), $2 extensions (text[]): the pairs, position by position
SELECT a.system_id, a.extension, a.valid_from, a.valid_to, coalesce(nullif(u.full_name, ''), u.username) AS name
FROM extension_assignments a JOIN users u ON u.id = a.user_id
WHERE (a.system_id, a.extension) IN (SELECT s, e FROM unnest($1::bigint[], $2::text[]) AS p (s, e))
ORDER BY a.system_id, a.extension, a.valid_from
