"""scrm's refusals: `ScrmInvalid` (400, field messages), answered by the API's one exception
handler and shown by the admin."""
from wework.errors import DomainError, PermissionDeniedError


class ScrmInvalid(DomainError):
    status = 400
    code = "invalid"


class ScrmPermissionDenied(PermissionDeniedError):
    """The user may not do this on that instance."""


def invalid(field, message):
    return ScrmInvalid(fields={field: [message]})
