"""Validating requests, responses and events against the protocol's schemas (fastjsonschema)."""

from __future__ import annotations

from functools import lru_cache

from .commands import COMMANDS
from .events import EVENT_DATA_SCHEMAS, EVENT_ENVELOPE_SCHEMA
from .schemas import CONTENT_SCHEMAS, ENVELOPE_SCHEMA, SEND_REQUEST


def _schema_for(kind, name):
    if kind == "response":
        return COMMANDS[name].response
    if kind == "request":
        return COMMANDS[name].request
    if kind == "query":
        return COMMANDS[name].query
    if kind == "event":
        return EVENT_DATA_SCHEMAS[name]
    if kind == "envelope":
        return EVENT_ENVELOPE_SCHEMA if name == "event" else ENVELOPE_SCHEMA
    if kind == "content":
        return CONTENT_SCHEMAS[name]
    raise KeyError((kind, name))


@lru_cache(maxsize=None)
def _validator_for(kind, name):
    """Compiled validator (fastjsonschema, draft-07): ~20x faster than interpreting the
    schema, which matters for pages of 500 contacts."""
    import fastjsonschema

    if (kind, name) == ("request", "send_message"):
        return _send_request_validator()
    return fastjsonschema.compile(_schema_for(kind, name))


def _send_request_validator():
    """SEND_REQUEST checked as its schema says, but with the content schema picked by `type`
    instead of evaluating its if/then branches (fastjsonschema raises and catches an exception
    for every branch that does not apply: most of the cost of a send's validation)."""
    import fastjsonschema
    from fastjsonschema import JsonSchemaValueException

    base = fastjsonschema.compile({k: v for k, v in SEND_REQUEST.items() if k != "allOf"})
    content = {t: fastjsonschema.compile(s) for t, s in CONTENT_SCHEMAS.items()}

    def validate(data):
        base(data)
        check = content.get(data["type"])
        try:
            check(data["content"])
        except JsonSchemaValueException as exc:
            raise JsonSchemaValueException(
                "data.content" + exc.message[len("data"):], exc.value, "data.content" + (exc.name or "")[len("data"):],
                exc.definition, exc.rule,
            ) from None
        return data

    return validate


def all_schemas():
    """Every (kind, name, schema) of the protocol, e.g. to check them against the meta-schema."""
    for name, command in COMMANDS.items():
        for kind in ("request", "query", "response"):
            schema = getattr(command, kind)
            if schema is not None:
                yield kind, name, schema
    for name, schema in EVENT_DATA_SCHEMAS.items():
        yield "event", name, schema
    for name, schema in CONTENT_SCHEMAS.items():
        yield "content", name, schema
    yield "envelope", "event", EVENT_ENVELOPE_SCHEMA
    yield "envelope", "response", ENVELOPE_SCHEMA


def schema_errors(kind, name, instance):
    """Messages for ``instance`` against a protocol schema (empty list if valid; the first
    violation otherwise, naming the field, e.g. ``content must contain ['text'] properties``).

    ``kind`` is one of ``response``, ``request``, ``query`` (``name`` = command name),
    ``event`` (``name`` = event type; validates the data), ``content`` (``name`` = message
    type), ``envelope`` (``name`` = ``event`` or ``response``).
    """
    from fastjsonschema import JsonSchemaValueException

    try:
        _validator_for(kind, name)(instance)
    except JsonSchemaValueException as exc:
        message = exc.message
        if message.startswith("data."):
            message = message[len("data.") :]
        elif message.startswith("data "):
            message = "(root) " + message[len("data ") :]
        return [message]
    return []


def first_item_errors(kind, name, instances):
    """(index, messages) of the first of ``instances`` that is not valid against the schema, or
    None when all are: one validator lookup and one exception frame for a whole batch instead of
    ``schema_errors`` per item (a batch send checks 100 message bodies)."""
    from fastjsonschema import JsonSchemaValueException

    validate = _validator_for(kind, name)
    index = 0
    try:
        for index, instance in enumerate(instances):
            validate(instance)
    except JsonSchemaValueException:
        return index, schema_errors(kind, name, instances[index])
    return None


def event_errors(event):
    """Validate a whole event (envelope and data); list of messages, empty if valid."""
    errors = schema_errors("envelope", "event", event)
    if errors:
        return errors
    return [f"data.{m}" for m in schema_errors("event", event["type"], event["data"])]
