"""SQL text written into multi-row statements (wework/db/literals.py): strings quoted by the
driver's C function on MySQL/MariaDB, JSON and datetimes prepared as their fields would."""
from datetime import UTC, datetime

import pytest
from django.db import connection, models

from wework.db import literals

pytestmark = pytest.mark.django_db

AWKWARD = ["plain", "it's", 'say "hi"', "back\\slash", "50% off %s %(x)s", "张三\n\t\x00end", ""]


def test_quoted_strings_round_trip_alone_and_mixed_with_parameters():
    quote = literals.string_quoter(connection)
    if connection.vendor != "mysql":
        assert quote is None  # other backends keep strings as parameters
        return
    with connection.cursor() as cursor:
        for value in AWKWARD:
            cursor.execute(f"SELECT {quote(value)}", [])  # every value in the statement
            assert cursor.fetchone()[0] == value
            cursor.execute(f"SELECT {quote(value)}, %s", [value])  # mixed with a parameter
            assert cursor.fetchone() == (value, value)
        # the text the driver itself would send, with % doubled for its %-formatting
        raw = connection.connection
        assert quote("50%'") == raw.literal("50%'").decode().replace("%", "%%")


def test_json_and_datetime_preparers_give_what_the_fields_give():
    field = models.JSONField()
    prepare = literals.json_preparer(field, connection)
    for value in ({"a": [1, "é", None]}, [1, 2], {"direction": "out", "receiver_id": 7}, "text", 3):
        assert prepare(value) == field.get_db_prep_save(value, connection)
    stamp = models.DateTimeField()
    prepare = literals.datetime_preparer(stamp, connection)
    now = datetime(2026, 12, 4, 13, 0, 1, 123456, tzinfo=UTC)
    assert str(prepare(now)) == str(stamp.get_db_prep_save(now, connection))
