-- Users whose user name or full name contains $1 (case-insensitive), for the agent picker.
-- $2: how many rows at most.
SELECT id, username, full_name
FROM users
WHERE active
  AND (username ILIKE '%' || $1 || '%' OR full_name ILIKE '%' || $1 || '%')
ORDER BY full_name, username
LIMIT $2
