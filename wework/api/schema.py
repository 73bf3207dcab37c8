"""OpenAPI post-processing: what drf-spectacular cannot see from the views.

- The error answers every endpoint can give, in the shapes the one exception handler
  (wework.api.exceptions) writes: 400 (bad input or filters), 401 (no or a bad token), 403, 404,
  409 (a state conflict) on writes, 429 (throttled), 502 (the instance failed) on calls that go
  to an instance, 503 with Retry-After (database or Redis away).
- Keyset pages (`messages/`: `{results, next_after}`) declared as the object they are.
- The `instance` query parameter that the per-instance shard lists require (contacts, groups,
  group members, instance metrics): their views read it themselves.
"""
from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "description": "`{\"detail\": str, \"code\": str}`, or field errors `{\"<field>\": [str]}`.",
    "additionalProperties": True,
}

#: Paths whose operations read `?instance=<id>` (required).
INSTANCE_PATHS = ("/api/v1/contacts/", "/api/v1/groups/", "/api/v1/group-members/",
                  "/api/v1/instance-monitors/")
#: Paths whose writes name an object in their body (a conversation's account): 404 when it is
#: not there or not visible.
BODY_LOOKUP_PATHS = ("/api/v1/messaging/conversations/",)
#: Paths whose actions call an instance (its failure is a 502).
UPSTREAM_PATHS = ("/api/v1/instances/{id}/", "/api/v1/wework-accounts/{id}/", "/api/v1/messaging/messages/send/")

ERRORS = {
    "400": "Invalid input, parameters or filters.",
    "401": "Not authenticated (no token, or an invalid or expired one).",
    "403": "Not allowed (permission, second factor or sudo mode missing).",
    "404": "No such object, or not visible to this user (on a list: an invalid cursor).",
    "409": "The object is in a state that does not allow this.",
    "429": "Too many requests; retry after the time in Retry-After.",
    "502": "The instance failed or could not be reached.",
    "503": "The database or Redis is not available; retry after the time in Retry-After.",
}
WRITE_METHODS = {"post", "put", "patch", "delete"}


def _instance_param():
    return {"in": "query", "name": "instance", "required": True,
            "schema": {"type": "integer", "minimum": 1},
            "description": "The instance whose shard is read."}


def _unwrap_pages(responses):
    """A keyset list (`{results, next_after}`, a component named *Page) is one object: the
    generator wraps every `list` answer in an array."""
    for answer in responses.values():
        for media in (answer.get("content") or {}).values():
            schema = media.get("schema") or {}
            ref = (schema.get("items") or {}).get("$ref", "")
            if schema.get("type") == "array" and ref.endswith("Page"):
                media["schema"] = {"$ref": ref}


#: Query parameters whose empty value is not "not given" (an empty cursor is a forged one).
EMPTY_IS_A_VALUE = frozenset({"cursor"})


def _allow_empty_filters(op):
    """A list's optional query parameters may be sent empty (`?created_before=&status=`, as an
    HTML form sends them): an empty filter is no filter (django-filter, DRF's search, ordering
    and page size), so the schema says so (`allowEmptyValue`)."""
    for param in op.get("parameters", []):
        if (param.get("in") == "query" and not param.get("required")
                and param.get("name") not in EMPTY_IS_A_VALUE):
            param["allowEmptyValue"] = True


def postprocess(result, generator, request, public):
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Error", ERROR_SCHEMA)
    ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        for method, op in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            if path.startswith(INSTANCE_PATHS):
                params = [p for p in op.get("parameters", []) if p.get("name") != "instance"]
                op["parameters"] = [_instance_param(), *params]
            if method == "get":
                _allow_empty_filters(op)
            codes = ["400", "401", "403", "429", "503"]
            if ("{" in path or path.startswith(INSTANCE_PATHS) or method == "get"
                    or path.startswith(BODY_LOOKUP_PATHS)):
                codes.append("404")  # an object, an instance, or a list's stale or forged cursor
            if method in WRITE_METHODS:
                codes.append("409")
            if path.startswith(UPSTREAM_PATHS) and method == "post":
                codes.append("502")
            responses = op.setdefault("responses", {})
            _unwrap_pages(responses)
            for code in codes:
                responses.setdefault(code, {"description": ERRORS[code],
                                            "content": {"application/json": {"schema": ref}}})
    return result
