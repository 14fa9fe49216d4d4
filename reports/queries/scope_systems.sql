-- Every telephone system with its branch: the report's branch and system filters resolve here.
SELECT s.id, s.name, s.title, s.timezone, b.id AS branch_id, b.name AS branch_name, b.title AS branch_title
FROM telephone_systems s JOIN branches b ON b.id = s.branch_id
ORDER BY s.name
