"""SQL text for values that need no escaping, strings escaped by the driver's C function, and a
fast conversion of UTC datetimes.

Multi-row statements built from plain values (the dispatcher's message rows, the contact
sync's upserts, a task's receiver rows) write integers, NULLs and plain timestamps into the
statement instead of handing each to the driver: MySQLdb's `literal()` costs a few
microseconds a value, which on tens of thousands of rows is most of the Python time of the
write. Strings go through `string_quoter` on MySQL/MariaDB (the same escaping, without the
per-value Python dispatch and the final `%` formatting of the whole statement).

MySQLdb formats a statement with `%` whenever a parameter list is given (an empty one too), so
`string_quoter`'s text has its `%` doubled: execute such statements with a list (`[]` when
every value is in the statement), never with None, and they may mix quoted text and `%s`.
"""
import json
import re
from datetime import UTC, datetime

from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations

_PLAIN_TIMESTAMP = re.compile(r"\A[0-9][0-9 :.T+-]*\Z")


def inline_literal(value) -> str | None:
    """The SQL text of a value that needs no escaping (integers, NULL, timestamps), else None."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and len(value) <= 32 and _PLAIN_TIMESTAMP.match(value):
        return f"'{value}'"
    return None


def datetime_preparer(field, connection):
    """A function preparing `field`'s values for `connection` as `get_db_prep_save` does.

    For a connection in UTC (the default of the MySQL and SQLite backends with USE_TZ) an
    aware UTC datetime becomes its naive text directly, as Django's backends write it
    (`str()` of the naive value); anything else goes through the field.
    """
    fast = getattr(connection, "timezone_name", None) == "UTC"

    def prepare(value):
        if fast and type(value) is datetime and value.tzinfo is UTC:
            return str(value.replace(tzinfo=None))
        return field.get_db_prep_save(value, connection)

    return prepare


def string_quoter(connection):
    """A function giving the quoted SQL text of a `str` exactly as the driver escapes it for
    `connection` (MySQLdb's C `string_literal` in the connection's character set, honouring its
    SQL mode; `%` doubled, see above), or None on other backends (there values stay parameters).

    Get it with the connection open (inside `connection.cursor()`) and per statement: a
    reconnect replaces the driver's connection the function is bound to.
    """
    if connection.vendor != "mysql":
        return None
    connection.ensure_connection()
    raw = connection.connection
    string_literal, encoding = raw.string_literal, raw.encoding

    def quote(value: str) -> str:
        text = string_literal(value.encode(encoding)).decode(encoding)
        return text.replace("%", "%%") if "%" in text else text  # the driver's %-formatting undoes it

    return quote


def json_preparer(field, connection):
    """A function preparing a JSONField's values for `connection` as `get_db_prep_save` does:
    `json.dumps` with the field's encoder where neither the field class nor the backend changes
    that (MySQL, MariaDB, SQLite), else the field itself."""
    cls = type(field)
    fast = (isinstance(field, models.JSONField)
            and type(connection.ops).adapt_json_value is BaseDatabaseOperations.adapt_json_value
            and all(getattr(cls, name) is getattr(models.JSONField, name)
                    for name in ("get_prep_value", "get_db_prep_value", "get_db_prep_save")))
    encoder = field.encoder

    def prepare(value):
        if fast and type(value) in (dict, list):
            return json.dumps(value, cls=encoder)
        return field.get_db_prep_save(value, connection)

    return prepare


_NEEDS_PREP = (models.JSONField, models.DateTimeField, models.DateField, models.DecimalField,
               models.UUIDField)


def field_preparers(fields, connection) -> list:
    """Per field, a function giving the value `get_db_prep_save` would write, or None where the
    value is written as it is (integers, text, booleans, relations' ids): the cheapest path for
    datetimes and JSON, the field itself for the other prepared types."""
    preparers = []
    for field in fields:
        if not isinstance(field, _NEEDS_PREP):
            preparers.append(None)
        elif isinstance(field, models.DateTimeField):
            preparers.append(datetime_preparer(field, connection))
        elif isinstance(field, models.JSONField):
            preparers.append(json_preparer(field, connection))
        else:
            preparers.append(lambda value, f=field: f.get_db_prep_save(value, connection))
    return preparers


def value_writer(connection):
    """A function giving the SQL text of a value to write into a statement, or None for a
    value that must stay a parameter: `inline_literal`'s text, and on MySQL/MariaDB strings
    quoted by `string_quoter` (a timestamp string quoted is the same text). Per statement, with
    the connection open, as `string_quoter`."""
    quote = string_quoter(connection)
    if quote is None:
        return inline_literal

    def text(value):
        kind = type(value)
        if kind is str:
            return quote(value)
        if value is None:
            return "NULL"
        if kind is int:
            return str(value)
        return inline_literal(value)

    return text
