-- Call totals per bucket, plus the whole period (bucket NULL), from the per-day rollup
-- `report_daily_totals` (see schema.sql): the same columns as totals_raw.sql. Valid only when every
-- chosen system keeps its days in the report's time zone and no agent filter is set.
-- $1 first day, $2 day after the last (date, [first, end))
-- $3 telephone system ids (bigint[])
-- $4 call kinds to count (text[] of incoming, outgoing, missed, internal)
-- $5 bucket first days (date[], ascending, the first equal to $1)
SELECT width_bucket(r.day, $5::date[]) AS bucket,
       coalesce(sum(r.calls), 0)::bigint AS calls,
       coalesce(sum(r.calls) FILTER (WHERE r.direction = 'incoming' AND r.status <> 'missed'), 0)::bigint AS incoming,
       coalesce(sum(r.talk_seconds) FILTER (WHERE r.direction = 'incoming'), 0)::numeric AS incoming_talk,
       coalesce(sum(r.calls) FILTER (WHERE r.direction = 'outgoing'), 0)::bigint AS outgoing,
       coalesce(sum(r.talk_seconds) FILTER (WHERE r.direction = 'outgoing'), 0)::numeric AS outgoing_talk,
       coalesce(sum(r.calls) FILTER (WHERE r.status = 'missed'), 0)::bigint AS missed,
       coalesce(sum(r.calls) FILTER (WHERE r.direction = 'internal'), 0)::bigint AS internal,
       coalesce(sum(r.talk_seconds) FILTER (WHERE r.direction = 'internal'), 0)::numeric AS internal_talk,
       coalesce(sum(r.calls) FILTER (WHERE r.status = 'answered'), 0)::bigint AS answered,
       coalesce(sum(r.wait_seconds), 0)::numeric AS wait_seconds,
       coalesce(sum(r.transfers), 0)::bigint AS transfers
FROM report_daily_totals r
WHERE r.day >= $1 AND r.day < $2
  AND r.system_id = ANY($3::bigint[])
  AND (CASE WHEN r.status = 'missed' THEN 'missed' ELSE r.direction END) = ANY($4::text[])
GROUP BY GROUPING SETS ((width_bucket(r.day, $5::date[])), ())
