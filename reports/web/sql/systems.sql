-- Telephone systems, all of them or those of branch $1 (NULL: all), for the system picker.
SELECT s.id, s.name, s.title, s.branch_id
FROM telephone_systems s
WHERE $1::bigint IS NULL OR s.branch_id = $1
ORDER BY coalesce(nullif(s.title, ''), s.name), s.id
