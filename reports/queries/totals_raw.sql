-- Call totals per bucket, plus the whole period (bucket NULL), straight from `calls`.
-- Used when the rollup cannot answer: an agent filter, or a time zone other than the systems'.
-- $1 period start, $2 period end (timestamptz, [start, end))
-- $3 telephone system ids (bigint[])
-- $4 the agent's user id (bigint; NULL: any agent)
-- $5 call kinds to count (text[] of incoming, outgoing, missed, internal)
-- $6 bucket starts (timestamptz[], ascending, the first equal to $1): bucket n is width_bucket's n
SELECT width_bucket(c.start_time, $6::timestamptz[]) AS bucket,
       count(*)::bigint AS calls,
       count(*) FILTER (WHERE c.direction = 'incoming' AND c.status <> 'missed')::bigint AS incoming,
       coalesce(sum(c.talk_seconds) FILTER (WHERE c.direction = 'incoming'), 0)::numeric AS incoming_talk,
       count(*) FILTER (WHERE c.direction = 'outgoing')::bigint AS outgoing,
       coalesce(sum(c.talk_seconds) FILTER (WHERE c.direction = 'outgoing'), 0)::numeric AS outgoing_talk,
       count(*) FILTER (WHERE c.status = 'missed')::bigint AS missed,
       count(*) FILTER (WHERE c.direction = 'internal')::bigint AS internal,
       coalesce(sum(c.talk_seconds) FILTER (WHERE c.direction = 'internal'), 0)::numeric AS internal_talk,
       count(*) FILTER (WHERE c.status = 'answered')::bigint AS answered,
       coalesce(sum(c.wait_seconds), 0)::numeric AS wait_seconds,
       coalesce(sum(c.transfer_count), 0)::bigint AS transfers
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
GROUP BY GROUPING SETS ((width_bucket(c.start_time, $6::timestamptz[])), ())
