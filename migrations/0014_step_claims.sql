-- One rule for claiming a step, deploy or orchestration (edge_core::retry::StepClaims):
-- a step held by an attempt (claimed_at set) is taken over only once its claim is
-- older than STEP_STALE_SECONDS; a released one (claimed_at NULL) only once due_at,
-- the time of its scheduled retry, has come (NULL: any time).
ALTER TABLE deploy_steps ADD COLUMN claimed_at INTEGER;
ALTER TABLE deploy_steps ADD COLUMN due_at INTEGER;
-- A started step was claimed when it was last touched (the old rule's clock).
UPDATE deploy_steps SET claimed_at = updated_at WHERE state = 'started';
ALTER TABLE workflow_steps ADD COLUMN due_at INTEGER;
