-- Login throttle: one failure for each key of $1 at $3 (NULL: now), after deleting every failure
-- older than the window of $2 seconds (no key needs them any more).
WITH clock AS (SELECT coalesce($3::timestamptz, now()) AS now),
pruned AS (
    DELETE FROM web_login_failures f USING clock WHERE f.failed_at <= clock.now - $2 * interval '1 second'
)
INSERT INTO web_login_failures (key, failed_at)
SELECT key, clock.now FROM unnest($1::text[]) AS key, clock
