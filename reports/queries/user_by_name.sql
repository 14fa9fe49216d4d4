-- One user by username: for the agent filter and for the acting user's roles.
-- $1 username (text)
SELECT id, username, coalesce(nullif(full_name, ''), username) AS name, roles, active
FROM users WHERE username = $1
