-- Approvals (edge_core::deploy::approval): a deploy job of an app with `approval`
-- waits in its first step, `awaiting_approval`, until someone decides. The step
-- records who and when in its `result` (`{"decision", "by", "at"}`; while it waits,
-- `{"waiting_for": "approval", "deadline"}`), and keeps its deadline in `due_at`, so
-- nothing looks at it before then; the cron fails those past it. This finds them
-- without reading every started step.
CREATE INDEX deploy_steps_awaiting_approval ON deploy_steps (due_at)
  WHERE name = 'awaiting_approval' AND state = 'started';
