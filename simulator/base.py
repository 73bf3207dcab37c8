"""The simulator's shared pieces: constants, protocol errors, page cursors and the routes built
from `instances.protocol.COMMANDS`."""
from __future__ import annotations

import base64
import logging
import re
import time

from instances import protocol
from instances.protocol import ErrorCode

logger = logging.getLogger("simulator")

RUNTIME = "wework-simulator"
RUNTIME_VERSION = "1.0"
DEFAULT_CLIENT_VERSION = "4.1.22.6019"


def now_ms():
    return int(time.time() * 1000)


class SimError(Exception):
    """A protocol error answered by the simulator."""

    def __init__(self, code, message, retry_after_s=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        self.status = protocol.ERROR_HTTP_STATUS.get(code, 500)


def _encode_cursor(offset):
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _decode_cursor(cursor):
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, value = raw.split(":", 1)
        offset = int(value)
        if kind != "o" or offset < 0:
            raise ValueError
        return offset
    except (ValueError, UnicodeDecodeError):
        raise SimError(ErrorCode.INVALID_REQUEST, "cursor: not a cursor from this instance") from None


_ROUTES = []
for _command in protocol.COMMAND_LIST:
    _pattern = re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", protocol.PATH_PREFIX + _command.path)
    _ROUTES.append((re.compile(f"^{_pattern}$"), _command))
