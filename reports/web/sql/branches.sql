-- Every branch, for the branch picker.
SELECT id, name, title
FROM branches
ORDER BY coalesce(nullif(title, ''), name), id
