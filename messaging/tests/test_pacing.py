"""Per-account pacing shared through Redis (or process memory without Redis), on a fake clock:
the waits are exact and nothing sleeps."""
import threading

from messaging import pacing
from messaging.clock import FakeClock


def limits(**kw):
    base = dict(min_interval_s=0.0, jitter_s=0.0, per_minute=0, daily=0)
    base.update(kw)
    return pacing.Limits(**base)


def _slots(account_id):
    p = pacing.pacer()
    if isinstance(p, pacing._RedisPacer):
        return sorted(score for _m, score in p.client.zrange(pacing._keys(account_id)[1], 0, -1, withscores=True))
    return sorted(p.state[account_id]["win"])


def test_interval_spaces_reservations(clock):
    pacing.pacer().reset(1)
    lim = limits(min_interval_s=0.2, per_minute=1000)
    res = [pacing.reserve(1, lim, max_wait_s=10, clock=clock) for _ in range(4)]
    assert all(r.ok for r in res)
    assert [r.wait_s for r in res] == [0.0, 0.2, 0.4, 0.6]  # the clock did not move
    slots = _slots(1)
    assert [b - a for a, b in zip(slots, slots[1:])] == [200, 200, 200]


def test_per_minute_cap_and_daily_cap(clock):
    pacing.pacer().reset(2)
    lim = limits(per_minute=3)
    res = [pacing.reserve(2, lim, max_wait_s=5, clock=clock) for _ in range(4)]
    assert [r.code for r in res[:3]] == [pacing.RESERVED] * 3
    assert res[3].code == pacing.TOO_FAR and res[3].wait_s == 60.0
    clock.advance(60)
    assert pacing.reserve(2, lim, max_wait_s=5, clock=clock).ok  # the window moved on
    pacing.pacer().reset(3)
    lim = limits(daily=2)
    assert [pacing.reserve(3, lim, clock=clock).code for _ in range(3)] == [0, 0, pacing.DAILY_CAP]


def test_block_stops_everything_until_unblocked():
    pacing.pacer().reset(4)
    pacing.block(4, "risk_control")
    assert pacing.reserve(4, limits()).code == pacing.BLOCKED
    assert pacing.blocked_reason(4) == "risk_control"
    pacing.unblock(4)
    assert pacing.reserve(4, limits()).ok


def test_defaults_follow_protocol(settings):
    settings.MESSAGING = {}
    lim = pacing.Limits.default()
    assert (lim.min_interval_s, lim.jitter_s, lim.per_minute) == (3.0, 2.0, 30)
    assert lim.conversation_interval_s == 3.0 and lim.any
    assert 3000 <= lim.interval_ms() <= 5000
    assert pacing.Limits.default(send_interval_s=10).min_interval_s == 10


def test_shared_between_threads_without_overlap():
    """40 reservations from 4 threads: the slots handed out (as recorded by the pacer itself)
    are all at least the interval apart."""
    pacing.pacer().reset(5)
    lim = limits(min_interval_s=0.05, per_minute=1000)  # per_minute > 0 records every slot
    errors = []

    def worker():
        for _ in range(10):
            if not pacing.reserve(5, lim, max_wait_s=30).ok:
                errors.append("refused")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slots = _slots(5)
    gaps = [b - a for a, b in zip(slots, slots[1:])]
    assert not errors and len(slots) == 40 and min(gaps) >= 50


def test_one_message_per_interval_per_conversation(clock):
    pacing.pacer().reset(7)
    lim = limits(conversation_interval_s=0.3)
    assert pacing.reserve(7, lim, conversation_id="wxid_a", clock=clock).ok
    busy = pacing.reserve(7, lim, conversation_id="wxid_a", clock=clock)
    assert busy.code == pacing.CONVERSATION_BUSY and busy.wait_s == 0.3
    assert pacing.reserve(7, lim, conversation_id="wxid_b", clock=clock).ok  # another conversation goes at once
    assert pacing.reserve(7, lim, clock=clock).ok  # no conversation given: only the account's limits
    clock.advance(busy.wait_s)
    assert pacing.reserve(7, lim, conversation_id="wxid_a", clock=clock).ok
    # per account: the same conversation id of another account is free
    pacing.pacer().reset(8)
    assert pacing.reserve(8, lim, conversation_id="wxid_a", clock=clock).ok


def test_conversation_free_by_the_accounts_slot_is_not_busy(clock):
    pacing.pacer().reset(9)
    lim = limits(min_interval_s=0.4, conversation_interval_s=0.2)
    assert pacing.reserve(9, lim, conversation_id="wxid_a", clock=clock).ok
    second = pacing.reserve(9, lim, conversation_id="wxid_a", clock=clock)
    assert second.ok and second.wait_s == 0.4  # the account's interval is the longer wait


def test_system_clock_reserves_on_the_shared_clock():
    """Without a test clock the slots come from Redis's clock (or the process's): however long
    the machine takes between two reservations, they are at least the interval apart."""
    pacing.pacer().reset(10)
    lim = limits(min_interval_s=0.2, per_minute=1000)
    assert all(pacing.reserve(10, lim, max_wait_s=10).ok for _ in range(2))
    first, second = _slots(10)
    assert second - first >= 200


def test_local_fallback_shares_the_stop_between_processes():
    """Without Redis each process has its own pacer (the web process clears a stop, the worker
    reads it): the stop flag lives in the Django cache, not in the pacer's memory."""
    web, worker = pacing._LocalPacer(), pacing._LocalPacer()
    web.unblock(11)
    worker.block(11, "risk_control")
    assert web.blocked_reason(11) == "risk_control"
    assert web.reserve(11, limits(), 5).code == pacing.BLOCKED
    web.unblock(11)  # an operator clears the stop on the web
    assert worker.blocked_reason(11) is None
    assert worker.reserve(11, limits(), 5).ok


def test_local_pacer_takes_the_fake_clock():
    p, clock = pacing._LocalPacer(), FakeClock()
    lim = limits(min_interval_s=1.0)
    assert p.reserve(12, lim, 5, clock=clock).wait_s == 0.0
    assert p.reserve(12, lim, 5, clock=clock).wait_s == 1.0
    clock.advance(5)
    assert p.reserve(12, lim, 5, clock=clock).wait_s == 0.0
