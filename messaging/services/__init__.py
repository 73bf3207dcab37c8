"""Messaging domain logic, one module per topic; views, the API, the admin, Celery tasks and
commands call these, they hold no rules of their own.

* requests: `TaskRequest`, the rules of a send task (shared by the compose form and the API)
* sending: `create_task` / `send_message` for an acting user (the send-versus-broadcast rule)
* lifecycle: start, pause, resume, cancel, resend failed, rebuild counters; beat's `kick`
* transitions: the platform's own status changes (complete, automatic pause, fail)
* stops: risk control, stopping an account's sending
* receivers: explicit lists, filters, @mentions, reply-to, receiver rows
* senders: the sending account and whether it may send
* templates: validation, preview, saving
* counters: task counters and progress, account/instance message counts
* task_audit: the audit of task status changes (reported to monitoring by a signal)
* conversations: one account's conversation across month shards, read markers, replies
* inbox: the conversations with unread received messages across a user's accounts (keyset pages)
* stats: mass-send statistics (delivered, failed, replied in a window, opted out), opt-out sources
* exports: a task's receivers and results as CSV (streamed) or Excel (bounded)

Dispatch (claims, pacing, sending, acknowledgements) is the `messaging.dispatch` package;
inbound events (`message.received`, `message.status`) are `messaging.inbound`.
"""

