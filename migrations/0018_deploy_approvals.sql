-- Approvals (edge_core::deploy::approval): a deploy job of an app with `approval`
-- waits in its first step, `awaiting_approval`, until someone decides. The step's
-- `result` says what it waits for (`{"waiting_for": "approval", "deadline"}`) and,
-- once decided, who decided what and when (`"decision", "by", "at"` beside them);
-- while it waits, `due_at` holds its deadline, so nothing looks at it before then.
-- The cron fails those past it; this finds them without reading every started step.
CREATE INDEX deploy_steps_awaiting_approval ON deploy_steps (due_at)
  WHERE name = 'awaiting_approval' AND state = 'started';
