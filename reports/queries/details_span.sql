-- The first and the last start time of the calls of a period on the given systems (two index probes),
-- where a large export cuts the period into parts (render/csv_parts.py); the other filters do not
-- matter here: they only make the parts less even.
-- $1 period start, $2 period end (timestamptz, [start, end)), $3 telephone system ids (bigint[])
SELECT min(c.start_time) AS first, max(c.start_time) AS last
FROM calls c
WHERE c.start_time >= $1 AND c.start_time < $2 AND c.system_id = ANY($3::bigint[])
