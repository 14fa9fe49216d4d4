-- Extension assignments of the chosen systems with their users, to name the agents of call rows.
-- $1 telephone system ids (bigint[])
SELECT a.system_id, a.extension, a.valid_from, a.valid_to, u.id AS user_id, u.username,
       coalesce(nullif(u.full_name, ''), u.username) AS name
FROM extension_assignments a JOIN users u ON u.id = a.user_id
WHERE a.system_id = ANY($1::bigint[])
ORDER BY a.system_id, a.extension, a.valid_from
