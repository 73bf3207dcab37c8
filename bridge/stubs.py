"""The generated puppet-service stubs (``scripts/setup-bridge`` writes them to ``bridge/_stubs``
from the pinned npm ``wechaty-grpc``; they are not in git). Importing this module without them
fails with the command to run."""

try:
    from bridge._stubs.wechaty import puppet_pb2_grpc
    from bridge._stubs.wechaty.puppet import (
        base_pb2,
        contact_pb2,
        download_upload_pb2,
        event_pb2,
        location_pb2,
        message_pb2,
        room_member_pb2,
        room_pb2,
        url_link_pb2,
    )
except ImportError as exc:  # pragma: no cover - depends on the machine's setup
    raise ImportError(
        "The puppet-service stubs are missing: run scripts/setup-bridge (needs node and npm)."
    ) from exc

__all__ = ["base_pb2", "contact_pb2", "download_upload_pb2", "event_pb2", "location_pb2", "message_pb2", "puppet_pb2_grpc",
           "room_member_pb2", "room_pb2", "url_link_pb2"]


def available():
    return True
