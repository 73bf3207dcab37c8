"""The embedded broker (kombu's filesystem transport, the default without Redis or RabbitMQ)
with atomic writes.

kombu writes a message file in place: a worker listing the folder at that moment moves the
still empty file away, reads nothing, loses the message and dies on the JSON error (seen by the
browser suite: the worker stopped mid-walk). Here a message is written under a name the
readers skip (a leading dot, `.tmp`), then renamed into the queue (atomic on one filesystem).
`wework.celery` registers this transport for `filesystem://` URLs."""
import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

ALIAS = "filesystem"
PATH = "wework.broker:Transport"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put `payload` onto `queue`: written aside, then renamed into the queue."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        temp = os.path.join(self.data_folder_out, f".{name}.tmp")
        try:
            with open(temp, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(temp, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def register() -> None:
    """filesystem:// URLs use this transport (kombu resolves transports by alias)."""
    from kombu.transport import TRANSPORT_ALIASES

    TRANSPORT_ALIASES[ALIAS] = PATH
