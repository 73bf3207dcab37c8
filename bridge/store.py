"""The bridge's durable state, one SQLite file (WAL): what survives a crash of the bridge.

- ``events``: the outbox. Every event the bridge emits is numbered here (``seq`` = SQLite's
  AUTOINCREMENT rowid: 1, 2, 3 without holes, never reused) before anyone is told about it,
  so replay (``GET /v1/events``) and the webhook pusher read the same log after a restart.
- ``sends``: one row per ``client_msg_id``, written before the provider is called. Its state
  says what is known: ``queued`` (accepted, the provider not called yet), ``sending`` (the
  call left: if the bridge dies now, the outcome is unknown), then a final status. A repeat
  of a ``client_msg_id`` is answered from here and never reaches the provider again.
- ``meta``: configuration pushed by the platform, providers (tokens), the delivered seq.

One connection guarded by a lock: the bridge's writes are small and serialised anyway, and
SQLite allows one writer at a time.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    account_id TEXT,
    ts_ms INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sends (
    client_msg_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    sent_at_ms INTEGER,
    created_ms INTEGER NOT NULL,
    attempt_ms INTEGER
);
CREATE INDEX IF NOT EXISTS sends_pending ON sends (account_id, state, created_ms);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

FINAL_STATES = ("sent", "failed", "rate_limited", "risk_control")


def now_ms() -> int:
    return int(time.time() * 1000)


class Store:
    def __init__(self, path: str, *, retain_events: int = 200_000):
        self.path = path
        self.retain_events = retain_events
        self.lock = threading.Lock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        # synchronous=FULL: an acknowledged send or event must survive a power cut, not only a
        # SIGKILL (NORMAL would survive the kill; the figures in bench/README.md use FULL).
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self._appended = 0

    def close(self):
        with self.lock:
            self.db.close()

    # ---------------------------------------------------------------- meta

    def get(self, key, default=None):
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def put(self, key, value):
        with self.lock:
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    # ---------------------------------------------------------------- events

    def append(self, type_, account_id, data, instance_id):
        """Number and store one event; returns the envelope."""
        event_id = f"evt_{uuid.uuid4().hex}"
        ts = now_ms()
        with self.lock:
            cur = self.db.execute(
                "INSERT INTO events (event_id, type, account_id, ts_ms, data) VALUES (?, ?, ?, ?, ?)",
                (event_id, type_, account_id, ts, json.dumps(data, ensure_ascii=False)),
            )
            seq = cur.lastrowid
            self._appended += 1
            if self._appended % 1000 == 0:
                self.db.execute("DELETE FROM events WHERE seq <= ?", (seq - self.retain_events,))
        return {"event_id": event_id, "type": type_, "instance_id": instance_id, "account_id": account_id,
                "seq": seq, "ts_ms": ts, "data": data}

    def events_after(self, after_seq, limit, instance_id):
        with self.lock:
            rows = self.db.execute(
                "SELECT seq, event_id, type, account_id, ts_ms, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit + 1),
            ).fetchall()
        events = [
            {"event_id": r[1], "type": r[2], "instance_id": instance_id, "account_id": r[3], "seq": r[0],
             "ts_ms": r[4], "data": json.loads(r[5])}
            for r in rows[:limit]
        ]
        return events, len(rows) > limit

    def last_seq(self):
        with self.lock:
            row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return row[0] if row else 0

    # ---------------------------------------------------------------- sends

    def accept_send(self, account_id, body):
        """Store a new send as ``queued``; returns (row, duplicate). A known client_msg_id
        returns the stored row and ``duplicate=True``: nothing new is stored or sent."""
        cid = body["client_msg_id"]
        message_id = f"msg_{uuid.uuid4().hex}"
        with self.lock:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO sends (client_msg_id, account_id, message_id, conversation_id, body, state,"
                " created_ms) VALUES (?, ?, ?, ?, ?, 'queued', ?)",
                (cid, account_id, message_id, body["conversation_id"], json.dumps(body, ensure_ascii=False), now_ms()),
            )
            inserted = cur.rowcount == 1
            row = self._send_row(cid)
        return row, not inserted

    def _send_row(self, key):
        row = self.db.execute(
            "SELECT client_msg_id, account_id, message_id, conversation_id, body, state, error, sent_at_ms, attempt_ms"
            " FROM sends WHERE client_msg_id = ? OR message_id = ?",
            (key, key),
        ).fetchone()
        if row is None:
            return None
        return {"client_msg_id": row[0], "account_id": row[1], "message_id": row[2], "conversation_id": row[3],
                "body": json.loads(row[4]), "state": row[5], "error": json.loads(row[6]) if row[6] else None,
                "sent_at_ms": row[7], "attempt_ms": row[8]}

    def send(self, key):
        with self.lock:
            return self._send_row(key)

    def next_queued(self, account_id):
        with self.lock:
            row = self.db.execute(
                "SELECT client_msg_id FROM sends WHERE account_id = ? AND state = 'queued' ORDER BY created_ms, rowid LIMIT 1",
                (account_id,),
            ).fetchone()
            return self._send_row(row[0]) if row else None

    def mark_sending(self, client_msg_id):
        """The last write before the provider is called: from here on the outcome is unknown
        until the call answers (or the echo arrives)."""
        with self.lock:
            cur = self.db.execute(
                "UPDATE sends SET state = 'sending', attempt_ms = ? WHERE client_msg_id = ? AND state = 'queued'",
                (now_ms(), client_msg_id),
            )
            return cur.rowcount == 1

    def finish(self, client_msg_id, state, *, error=None, sent_at_ms=None, from_states=("sending", "unsure")):
        """Final state, once: returns False when the send was already final."""
        marks = ",".join("?" * len(from_states))
        with self.lock:
            cur = self.db.execute(
                f"UPDATE sends SET state = ?, error = ?, sent_at_ms = ? WHERE client_msg_id = ? AND state IN ({marks})",
                (state, json.dumps(error) if error else None, sent_at_ms, client_msg_id, *from_states),
            )
            return cur.rowcount == 1

    def mark_unsure(self, client_msg_id):
        with self.lock:
            self.db.execute("UPDATE sends SET state = 'unsure' WHERE client_msg_id = ? AND state = 'sending'",
                            (client_msg_id,))

    def forget(self, client_msg_id):
        """A refusal before the provider was called is not remembered (the protocol: refused
        requests can be sent again once the cause is fixed)."""
        with self.lock:
            self.db.execute("DELETE FROM sends WHERE client_msg_id = ? AND state = 'queued'", (client_msg_id,))

    def in_states(self, states):
        marks = ",".join("?" * len(states))
        with self.lock:
            keys = [r[0] for r in self.db.execute(
                f"SELECT client_msg_id FROM sends WHERE state IN ({marks}) ORDER BY created_ms", tuple(states))]
            return [self._send_row(k) for k in keys]

    def queue_depth(self):
        with self.lock:
            return self.db.execute("SELECT COUNT(*) FROM sends WHERE state IN ('queued', 'sending', 'unsure')").fetchone()[0]
