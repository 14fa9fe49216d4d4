-- The call rows of a CSV export formatted by the server, for COPY ... TO STDOUT (CSV) straight to the
-- output: the same cells as render/csv.py writes from CallRows, byte for byte (golden-tested).
-- Agent names come from the assignment valid at the call's time (the latest one starting before it),
-- identities from identity_numbers; newlines become spaces so that one record is one line (the
-- reader turns line ends into CRLF); empty cells are NULL so COPY prints them unquoted; cells that
-- a spreadsheet would run as formulas get a leading quote (first character = + - @ or tab, tested by
-- its code: integer comparisons, cheaper per row than comparing one-character strings).
-- $1-$5 as in details_copy.sql
-- $6 the report's time zone (text)
-- $7 the first local day of the period (date), $8 each day of the period written in the calendar (text[])
-- $9 bucket starts (timestamptz[], ascending), $10 bucket labels (text[])
-- $11 call kind labels (text[]: incoming, outgoing, missed, internal)
-- $12 reason keys (text[]), $13 their labels (text[])
-- $14 labels of the systems of $3, in the same order (text[])
-- $15 added to each row's number (bigint: the rows before $1 of a period cut in parts; NULL leaves the
--     cell empty, for a part numbered afterwards by its reader, see render/csv_parts.py)
WITH maps AS MATERIALIZED (
    -- Lookups as in-memory maps, each built once (an index lookup per call cost ~13 us), so that the
    -- calls are read in index order and never sorted. Agent names: "system_id:extension" -> name,
    -- only for an extension whose one assignment in the period covers all of it; a re-assigned one
    -- maps to JSON null and is looked up at the call's time. Identities: number -> their names.
    SELECT (SELECT coalesce(jsonb_object_agg(k.key, k.name), '{}')
            FROM (SELECT a.system_id || ':' || a.extension AS key,
                         CASE WHEN count(*) = 1 AND min(a.valid_from) <= $1
                                   AND (bool_or(a.valid_to IS NULL) OR max(a.valid_to) >= $2)
                              THEN min(coalesce(nullif(us.full_name, ''), us.username)) END AS name
                  FROM extension_assignments a JOIN users us ON us.id = a.user_id
                  WHERE a.system_id = ANY($3::bigint[]) AND a.valid_from < $2 AND (a.valid_to IS NULL OR a.valid_to > $1)
                  GROUP BY a.system_id, a.extension) k) AS agents,
           (SELECT coalesce(jsonb_object_agg(h.number_e164, h.names), '{}')
            FROM (SELECT n.number_e164, translate(string_agg(i.name, '; ' ORDER BY i.name, i.id), E'\r\n', '  ') AS names
                  FROM identity_numbers n JOIN identities i ON i.id = n.identity_id
                  GROUP BY n.number_e164) h) AS holders
)
SELECT row_number() OVER (ORDER BY c.start_time, c.id) + $15::bigint,
       ($8::text[])[((c.start_time AT TIME ZONE $6::text)::date - $7::date) + 1],
       date_trunc('second', c.start_time AT TIME ZONE $6::text)::time::text,
       nullif(CASE WHEN ascii(t.caller) IN (61, 43, 45, 64, 9) THEN '''' ELSE '' END || t.caller, ''),
       nullif(CASE WHEN ascii(t.caller_name) IN (61, 43, 45, 64, 9) THEN '''' ELSE '' END || t.caller_name, ''),
       nullif(CASE WHEN ascii(t.callee) IN (61, 43, 45, 64, 9) THEN '''' ELSE '' END || t.callee, ''),
       nullif(CASE WHEN ascii(t.agents) IN (61, 43, 45, 64, 9) THEN '''' ELSE '' END || t.agents, ''),
       nullif(CASE WHEN ascii(t.identities) IN (61, 43, 45, 64, 9) THEN '''' ELSE '' END || t.identities, ''),
       ($11::text[])[CASE WHEN c.status = 'missed' THEN 3 WHEN c.direction = 'incoming' THEN 1
                          WHEN c.direction = 'outgoing' THEN 2 ELSE 4 END],
       ($13::text[])[array_position($12::text[], c.reason)],
       c.transfer_count,
       CASE WHEN d.wait < 3600000 THEN (d.wait / 3600)::text ELSE to_char(d.wait / 3600, 'FM999,999,999,990') END
           || ':' || lpad((d.wait % 3600 / 60)::text, 2, '0') || ':' || lpad((d.wait % 60)::text, 2, '0'),
       CASE WHEN d.talk < 3600000 THEN (d.talk / 3600)::text ELSE to_char(d.talk / 3600, 'FM999,999,999,990') END
           || ':' || lpad((d.talk % 3600 / 60)::text, 2, '0') || ':' || lpad((d.talk % 60)::text, 2, '0'),
       nullif(CASE WHEN ascii(t.system) IN (61, 43, 45, 64, 9) THEN '''' ELSE '' END || t.system, ''),
       CASE WHEN ascii(t.call_id) IN (61, 43, 45, 64, 9) THEN '''' ELSE '' END || t.call_id,
       ($10::text[])[width_bucket(c.start_time, $9::timestamptz[])]
FROM calls c
CROSS JOIN LATERAL (
    -- PRODUCT.md's agents: who placed the call (outgoing, internal), then who answered or rang.
    SELECT CASE WHEN c.direction <> 'incoming' AND c.caller <> ''
                     AND NOT c.caller = ANY(CASE WHEN c.status = 'answered' THEN c.agents ELSE c.rang END)
                THEN c.caller || CASE WHEN c.status = 'answered' THEN c.agents ELSE c.rang END
                ELSE CASE WHEN c.status = 'answered' THEN c.agents ELSE c.rang END END AS chain,
           floor(c.wait_seconds + 0.5)::bigint AS wait,
           CASE WHEN c.status = 'answered' THEN floor(c.talk_seconds + 0.5)::bigint END AS talk
) d
CROSS JOIN LATERAL (
    SELECT translate(c.caller, E'\r\n', '  ') AS caller,
           coalesce(translate(c.caller_name, E'\r\n', '  '), '') AS caller_name,
           translate(c.callee, E'\r\n', '  ') AS callee,
           translate(c.call_id, E'\r\n', '  ') AS call_id,
           translate(coalesce(($14::text[])[array_position($3::bigint[], c.system_id)], c.system_id::text),
                     E'\r\n', '  ') AS system,
           coalesce((SELECT holders FROM maps) ->> c.external_number, '') AS identities,
           -- One agent (most calls): a map lookup; longer chains: each extension once, in order.
           CASE WHEN cardinality(d.chain) = 1 THEN
               coalesce(translate((SELECT agents FROM maps) ->> (c.system_id || ':' || d.chain[1]), E'\r\n', '  '),
                        CASE WHEN (SELECT agents FROM maps) ? (c.system_id || ':' || d.chain[1]) THEN
                            (SELECT translate(coalesce(nullif(us.full_name, ''), us.username), E'\r\n', '  ')
                             FROM extension_assignments a JOIN users us ON us.id = a.user_id
                             WHERE a.system_id = c.system_id AND a.extension = d.chain[1]
                               AND a.valid_from <= c.start_time AND (a.valid_to IS NULL OR a.valid_to > c.start_time)
                             ORDER BY a.valid_from DESC LIMIT 1) END,
                        d.chain[1])
           ELSE coalesce((SELECT translate(string_agg(coalesce(e.name, e.ext), ' → ' ORDER BY e.pos), E'\r\n', '  ')
                          FROM (SELECT u.ext, u.pos, coalesce((SELECT agents FROM maps) ->> (c.system_id || ':' || u.ext),
                                    CASE WHEN (SELECT agents FROM maps) ? (c.system_id || ':' || u.ext) THEN
                                        (SELECT coalesce(nullif(us.full_name, ''), us.username)
                                         FROM extension_assignments a JOIN users us ON us.id = a.user_id
                                         WHERE a.system_id = c.system_id AND a.extension = u.ext
                                           AND a.valid_from <= c.start_time
                                           AND (a.valid_to IS NULL OR a.valid_to > c.start_time)
                                         ORDER BY a.valid_from DESC LIMIT 1) END) AS name
                                FROM unnest(d.chain) WITH ORDINALITY AS u(ext, pos)
                                -- Each extension once, where it first appears.
                                WHERE NOT u.ext = ANY(d.chain[:u.pos - 1])) e), '') END AS agents
    -- OFFSET 0 keeps this subquery whole: pulled up, each lookup would run once per use below.
    OFFSET 0
) t
WHERE c.start_time >= $1 AND c.start_time < $2
  AND c.system_id = ANY($3::bigint[])
  AND (CASE WHEN c.status = 'missed' THEN 'missed' ELSE c.direction END) = ANY($5::text[])
  AND ($4::bigint IS NULL OR EXISTS (
        SELECT 1 FROM extension_assignments a
        WHERE a.user_id = $4 AND a.system_id = c.system_id
          AND a.valid_from <= c.start_time AND (a.valid_to IS NULL OR a.valid_to > c.start_time)
          AND (a.extension = ANY(CASE WHEN c.status = 'answered' THEN c.agents ELSE c.rang END)
               OR (c.direction <> 'incoming' AND a.extension = c.caller))))
ORDER BY c.start_time, c.id
