"""The embedded broker writes a message file atomically: a worker listing the queue folder
while a message is being written never sees it half-written (kombu's own transport wrote in
place: the reader took the empty file, lost the message and died on the JSON error)."""
import os

from kombu import Connection

from wework import broker


def test_filesystem_urls_use_the_atomic_transport(tmp_path):
    with Connection("filesystem://", transport_options={"data_folder_in": str(tmp_path),
                                                        "data_folder_out": str(tmp_path)}) as conn:
        assert isinstance(conn.default_channel, broker.Channel)


def test_a_message_enters_the_queue_only_once_written(tmp_path, monkeypatch):
    with Connection("filesystem://", transport_options={"data_folder_in": str(tmp_path),
                                                        "data_folder_out": str(tmp_path)}) as conn:
        channel = conn.default_channel
        seen_while_writing = []
        real_dumps = broker.dumps

        def dumps_and_look(payload):
            # what a reader polling the queue would find while the message is being written
            seen_while_writing.append(channel._get("celery") if any(
                name.endswith(".celery.msg") for name in os.listdir(tmp_path)) else None)
            return real_dumps(payload)

        monkeypatch.setattr(broker, "dumps", dumps_and_look)
        channel._put("celery", {"body": "hello"})
        assert seen_while_writing == [None]
        assert [n for n in os.listdir(tmp_path) if n.endswith(".celery.msg")]
        assert channel._get("celery") == {"body": "hello"}
        assert os.listdir(tmp_path) == []
