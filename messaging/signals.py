"""What messaging tells the apps above it (monitoring), without importing them.

Both signals are sent synchronously, inside the transaction of the change they report, so a
receiver that writes rows (an audit row, an alert) commits or rolls back with it.

- `task_changed`: a message task changed status (or was refused a change) through a service
  that writes with `QuerySet.update()`, which fires no model signal. Sent with
  `operation` ("pause", "resume", "complete", "pause_risk_control", ...), `task` (the task, or an
  object with `pk` and `str()`), `old_values` and `new_values` (dicts, `new_values` None for a
  refused action), `result` ("SUCCESS"/"FAILURE"), `error` (the refusal's sentence or None) and
  `extra` (a dict or None). monitoring writes the audit row `message_task.<operation>`.
- `account_stopped`: sending stopped for an account after risk control or a ban (once per stop,
  however many in-flight messages report it). Sent with `account_id`, `wxid`, `instance_id`,
  `reason` (the error code), `detail` and `tasks_paused`. monitoring raises the alert
  `messaging.account_risk_control`. Sent with `send_robust()`: a failing receiver never blocks
  the stop.
- `account_stop_cleared`: an operator cleared an account's stop (`services.stops.clear_stop`),
  sent with `account_id`; monitoring resolves the alert `messaging.account_risk_control`.
"""
from django.dispatch import Signal

task_changed = Signal()
account_stopped = Signal()
account_stop_cleared = Signal()
