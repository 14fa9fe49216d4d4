-- The calls known by a call id (their Linkedid, or one merged into them), with their system.
-- $1 call id (text), $2 telephone system name (text; NULL: any)
SELECT c.*, s.name AS system_name, s.title AS system_title, s.timezone
FROM calls c JOIN telephone_systems s ON s.id = c.system_id
WHERE (c.call_id = $1 OR $1 = ANY(c.linkedids)) AND ($2::text IS NULL OR s.name = $2)
ORDER BY s.name
