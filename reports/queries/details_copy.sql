-- The call rows of a streamed export (COPY ... TO STDOUT, CSV), in time order, as plain text:
-- the server only scans and prints; names are added by the reader (see data.details_stream).
-- Newlines in values from the wire are turned into spaces so that one record is one line.
-- $1 period start, $2 period end (timestamptz, [start, end))
-- $3 telephone system ids (bigint[])
-- $4 the agent's user id (bigint; NULL: any agent)
-- $5 call kinds (text[] of incoming, outgoing, missed, internal)
SELECT c.call_id, c.system_id, extract(epoch FROM c.start_time), c.direction, c.status, c.reason,
       translate(c.caller, E'\r\n', '  '), translate(c.caller_name, E'\r\n', '  '), translate(c.callee, E'\r\n', '  '),
       c.external_number, c.wait_seconds, c.talk_seconds, c.transfer_count,
       array_to_string(CASE WHEN c.status = 'answered' THEN c.agents ELSE c.rang END, ' ')
FROM calls c
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
