-- id: security_health
-- version: 1
-- kind: event
-- action: disable_access
-- violation: true
-- remedy: category = 'patch' AND patched = true
-- description: A VM reports malware or a vulnerability that is not patched; its access is disabled until a patch event reports patched = true.
SELECT _row
FROM events
WHERE resource_type = 'vm'
  AND category IN ('malware', 'vulnerability')
  AND patched IS NOT TRUE
