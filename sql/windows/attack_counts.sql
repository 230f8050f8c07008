-- The window aggregation behind `attack_rates` and the `attack_increase` rule.
--
-- Runs over each batch of on-time events (table `events`, with the columns of the
-- archive's `events` table plus `window_start` and `window_end`). Its counts are
-- summed per window until the window closes, so the query must be a COUNT grouped by
-- window; `workload` is merged with max().
SELECT
    window_start,
    resource_id,
    category,
    max(workload) AS workload,
    count(*) AS event_count
FROM events
WHERE category IN ('brute_force', 'ddos')
GROUP BY window_start, resource_id, category
