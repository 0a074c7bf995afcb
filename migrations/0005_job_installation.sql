-- The GitHub App installation a job's delivery came from: its steps act as it.
ALTER TABLE deploy_jobs ADD COLUMN installation_id INTEGER;
