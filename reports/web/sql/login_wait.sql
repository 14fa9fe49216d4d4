-- Login throttle: seconds until keys $1 may try again (NULL: allowed now). A key must wait while
-- it has $2 or more failures in the last $3 seconds, until the $2-th newest of them leaves the window.
-- $4 is "now" (NULL: the database's clock, the same for every web worker).
WITH clock AS (SELECT coalesce($4::timestamptz, now()) AS now),
recent AS (
    SELECT f.failed_at, row_number() OVER (PARTITION BY f.key ORDER BY f.failed_at DESC) AS newest
    FROM web_login_failures f, clock
    WHERE f.key = ANY($1::text[]) AND f.failed_at > clock.now - $3 * interval '1 second'
      AND f.failed_at <= clock.now
)
SELECT extract(epoch FROM max(recent.failed_at) + $3 * interval '1 second' - min(clock.now))::float8 AS wait
FROM recent, clock
WHERE recent.newest = $2
