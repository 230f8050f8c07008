-- id: unclassified_data
-- version: 1
-- kind: event
-- action: deny_external_access
-- violation: true
-- remedy: category = 'classification_change' AND classification IS NOT NULL AND classification <> ''
-- description: A storage or database resource whose data has no classification (null, absent or empty); external access is denied until it is classified.
--
-- An event rule: it selects the events that are hits from `events` (one batch of
-- on-time events; the archive's columns plus window_start, window_end and _row).
-- Keep `_row` in the result: it identifies the hitting event.
SELECT _row
FROM events
WHERE resource_type IN ('storage', 'database')
  AND (classification IS NULL OR classification = '')
