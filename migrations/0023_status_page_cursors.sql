-- The status page and the admin API page their lists with a cursor (`?before=`):
-- newest first by time, then id, each page starting below the last row shown.
-- These indexes let each page's query start at its cursor instead of reading the
-- table (the bench seeds 1,000 jobs, 300 previews and 5,000 deliveries).
-- Recent deployments and `/api/jobs`: jobs by when they were made.
CREATE INDEX deploy_jobs_by_time ON deploy_jobs (created_at, id);
-- An app's job history.
CREATE INDEX deploy_jobs_by_app_time ON deploy_jobs (app, created_at, id);
-- The delivery log, by when each delivery came.
CREATE INDEX deliveries_by_time_id ON deliveries (received_at, id);
-- Previews, newest first by when they were asked for.
CREATE INDEX previews_by_time ON previews (created_at, id);
-- The overview's jobs in flight (is one stuck?) and live previews, of every app.
CREATE INDEX deploy_jobs_by_status ON deploy_jobs (status, id);
CREATE INDEX previews_by_wanted ON previews (wanted, status);
