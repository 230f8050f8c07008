-- The largest attack-rate increases: per resource and attack category, the window of
-- the period with the largest `attack_increase` hit (prev_count -> hit_count), with
-- how many windows rose that much, the category's attack events in the period and its
-- peak rate per minute; the $top largest, by increase, then count.
WITH rises AS (
    SELECT resource_id, workload, category, window_start, prev_count, hit_count, increase_pct,
           row_number() OVER (
               PARTITION BY resource_id, category
               ORDER BY increase_pct DESC, hit_count DESC, window_start) AS rank,
           count(*) OVER (PARTITION BY resource_id, category) AS rising_windows
    FROM policy_hits
    WHERE date BETWEEN $first_day AND $last_day
      AND window_start >= $start AND window_start < $end
      AND rule_id = 'attack_increase'
),
rates AS (
    SELECT resource_id, category,
           sum(event_count) AS attack_events,
           max(rate_per_min) AS peak_rate_per_min
    FROM attack_rates
    WHERE date BETWEEN $first_day AND $last_day
      AND window_start >= $start AND window_start < $end
    GROUP BY resource_id, category
)
SELECT x.resource_id, x.workload, x.category, x.window_start, x.prev_count, x.hit_count,
       x.increase_pct, x.rising_windows, r.attack_events, r.peak_rate_per_min
FROM rises x
LEFT JOIN rates r ON r.resource_id = x.resource_id AND r.category = x.category
WHERE x.rank = 1
ORDER BY x.increase_pct DESC, x.hit_count DESC, x.resource_id, x.category
LIMIT $top
