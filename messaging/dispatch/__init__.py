"""Dispatch: workers claim receivers in batches, pace per account, send, record results.

Guarantees (see docs/messaging.md):
- **No two workers send the same receiver.** A claim moves receivers PENDING → SENDING in one
  transaction (`claims`).
- **Nothing is sent twice.** Before anything is sent, the claim transaction creates the
  receiver's message row (in the monthly shard) with its `message_uuid` and links it
  (`preparing`). The uuid is the instance's `client_msg_id`: a repeated send after a crash or a
  reclaimed claim returns the first result and sends nothing.
- **Nothing is lost.** A worker killed at any moment leaves its receivers in SENDING. A live
  dispatcher renews its claims every CLAIM_HEARTBEAT_S (`heartbeat`); a claim not renewed for
  CLAIM_LEASE_S is handed back (PENDING) by `claims.reclaim_stale()` (beat, live dispatchers of
  the task), and the next claim re-sends with the same uuid. Celery runs with acks_late + reject_on_worker_lost, and
  beat re-enqueues dispatchers for running tasks whose dispatchers vanished (`leases`).
- **Results are exact.** Every state change is a conditional UPDATE (`WHERE send_status =
  SENDING`); task counters grow by the number of rows that actually changed, in the same
  transaction (`recording`); `services.counters.rebuild_counters()` recomputes them at any time.
- **Acknowledgements.** The instance answers a send with `queued` and reports the outcome as a
  `message.status` event (`inbound.handle_message_status`, or the event feed and status polls
  in `acks`), so a lost webhook delays nothing.

Modules, bottom up: `outcomes` (what an answer means; OutcomeKind), `heartbeat` (claim leases:
renewal, fencing), `claims` (claim, insert
message rows, reclaim), `preparing` (render and create each claimed receiver's message),
`recording` (apply outcomes), `transport` (the instance client, single and batch sends),
`acks` (in-flight messages and their acknowledgements), `leases` (dispatchers per task, Celery
enqueueing), `strategies` (serial, concurrent, batch sending) and `worker` (the Dispatcher loop,
`worker.run(task_id)`).
"""
