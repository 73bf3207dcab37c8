from datetime import datetime
from datetime import timezone as dt_timezone

import pytest

from wework import ids


def test_ids_increase_and_encode_their_time():
    values = [ids.new_id() for _ in range(20000)]
    assert values == sorted(values)
    assert len(set(values)) == len(values)
    delta = abs((ids.id_time(values[-1]) - datetime.now(dt_timezone.utc)).total_seconds())
    assert delta < 5
    assert values[-1] < 2**63


def test_backfill_ids_locate_their_time_and_stay_unique():
    when = datetime(2025, 3, 31, 23, 59, 59, tzinfo=dt_timezone.utc)
    values = [ids.new_id(when) for _ in range(10000)]  # more than 4096 in one ms
    assert len(set(values)) == 10000
    assert all(ids.id_time(v).replace(microsecond=0) == when for v in values)
    low, high = ids.id_bounds(when, datetime(2025, 4, 1, tzinfo=dt_timezone.utc))
    assert all(low <= v < high for v in values)


def test_naive_datetime_is_refused():
    with pytest.raises(ids.IdError):
        ids.new_id(datetime(2025, 1, 1))


def test_uuid7_is_time_ordered():
    first = ids.new_uuid(datetime(2024, 1, 1, tzinfo=dt_timezone.utc))
    second = ids.new_uuid(datetime(2025, 1, 1, tzinfo=dt_timezone.utc))
    assert len(first) == 36 and first[14] == "7"
    assert first < second < ids.new_uuid()


def test_uuid7_batches_are_valid_unique_and_of_now():
    import time
    import uuid

    before_ms = time.time_ns() // 1_000_000
    batch = ids.new_uuids(500)
    after_ms = time.time_ns() // 1_000_000
    assert len(set(batch)) == 500
    for text in batch:
        parsed = uuid.UUID(text)
        assert str(parsed) == text  # canonical, lower-case 8-4-4-4-12
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before_ms <= parsed.int >> 80 <= after_ms
    assert ids.new_uuid(datetime(2024, 1, 1, tzinfo=dt_timezone.utc)) < batch[0]
    assert ids.new_uuids(0) == []


# Uniqueness across live processes: wework/tests/test_ids_uniqueness.py (processes that hold
# their worker ids until all have reported, since an exited process rightly gives its id back).
