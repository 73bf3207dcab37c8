"""Content validation per message type and column mapping."""
import http.server
import threading

import pytest

from messaging import content as c
from messaging.errors import MessagingInvalid, error_messages

VALID = {
    "text": {"text": "hello"},
    "image": {"url": "https://cdn.example.com/a.png"},
    "video": {"url": "https://cdn.example.com/a.mp4", "thumb_url": "https://cdn.example.com/a.jpg", "duration_s": 12},
    "file": {"url": "https://cdn.example.com/a.pdf", "filename": "a.pdf", "size": 1024},
    "link": {"title": "Docs", "url": "https://example.com", "desc": "Read me"},
    "card": {"contact_id": "wxid_abc"},
    "location": {"latitude": 39.9, "longitude": 116.4, "title": "Office"},
}


@pytest.mark.parametrize("mtype", sorted(VALID))
def test_each_type_valid_and_round_trips_through_columns(mtype):
    clean = c.validate_content(mtype, VALID[mtype], check_media=False)
    cols = c.to_columns(mtype, clean)

    class M:
        message_type = mtype
        message_content = cols["message_content"]

    assert c.from_message(M) == clean
    if mtype in c.MEDIA_TYPES:
        assert cols["media_url"] == clean["url"]
    if mtype == "file":
        assert cols["file_name"] == "a.pdf" and cols["media_size"] == 1024


@pytest.mark.parametrize("mtype,content,field,fragment", [
    ("text", {"text": ""}, "content", "required"),
    ("text", {"text": "x" * 2001}, "content", "limit"),
    ("image", {"url": "ftp://x/a.png"}, "content", "http"),
    ("file", {"url": "https://x.example/a"}, "content", "filename"),
    ("location", {"latitude": 91, "longitude": 0}, "content", "between"),
    ("link", {"title": "t", "url": "https://x.example", "bogus": 1}, "content", "Unknown fields"),
    ("sticker", {"id": 1}, "message_type", "Unknown message type"),
])
def test_bad_content_is_a_clear_error(mtype, content, field, fragment):
    with pytest.raises(MessagingInvalid) as exc:
        c.validate_content(mtype, content, check_media=False)
    assert list(exc.value.fields) == [field] and exc.value.status == 400
    assert fragment in " ".join(error_messages(exc.value))


def test_content_that_is_not_an_object_is_refused():
    with pytest.raises(MessagingInvalid) as exc:
        c.parse_content("image", "not json")
    assert "JSON object" in exc.value.fields["content"][0]


def test_text_accepts_plain_string():
    assert c.parse_content("text", "hi") == {"text": "hi"}


@pytest.fixture
def media_server():
    class H(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200 if self.path.startswith("/ok") else 404)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_media_url_checked(media_server, settings):
    settings.MESSAGING = {**(settings.MESSAGING or {}), "MEDIA_CHECK_PRIVATE_HOSTS": True}
    c.check_media_url(media_server + "/ok.png")
    with pytest.raises(MessagingInvalid, match="404"):
        c.check_media_url(media_server + "/missing.png")
    with pytest.raises(MessagingInvalid, match="cannot be reached"):
        c.check_media_url("http://127.0.0.1:9/unreachable.png")


def test_media_check_never_requests_private_addresses(settings):
    """The check runs on the platform's server with an operator's URL: no requests into the
    internal network (no probing oracle); the instance reports an unreachable file itself."""
    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            seen.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        settings.MESSAGING = {**(settings.MESSAGING or {}), "MEDIA_CHECK_PRIVATE_HOSTS": False}
        c.check_media_url(f"http://127.0.0.1:{srv.server_address[1]}/secret.png")  # no error, no request
        c.check_media_url("http://10.1.2.3/x.png")
        c.check_media_url("http://169.254.169.254/latest/meta-data/")
        assert seen == []
        settings.MESSAGING = {**settings.MESSAGING, "MEDIA_CHECK_PRIVATE_HOSTS": True}
        with pytest.raises(MessagingInvalid, match="404"):
            c.check_media_url(f"http://127.0.0.1:{srv.server_address[1]}/secret.png")
        assert seen == ["/secret.png"]
    finally:
        srv.shutdown()


@pytest.mark.parametrize("mtype,content,fragment", [
    ("link", {"url": "https://x.example", "title": ["a"]}, "content.title must be text"),
    ("link", {"url": "https://x.example", "title": "t", "desc": 3}, "content.desc must be text"),
    ("location", {"latitude": 1, "longitude": 2, "address": {"a": 1}}, "content.address must be text"),
    ("card", {"contact_id": 42}, "content.contact_id must be text"),
    ("file", {"url": "https://x.example/a", "filename": ["a"]}, "content.filename must be text"),
    ("text", {"text": "a\x00b"}, "content.text must not contain null characters"),
    ("link", {"url": "https://x.example", "title": "a\x00"}, "content.title must not contain null characters"),
])
def test_text_fields_must_be_text_without_null_characters(mtype, content, fragment):
    for check in (c.validate_content, c.validate_unrendered):
        with pytest.raises(MessagingInvalid) as exc:
            check(mtype, content)
        assert list(exc.value.fields) == ["content"] and fragment in exc.value.fields["content"][0]


def test_unrendered_content_is_stored_checked():
    assert c.validate_unrendered("location", {"latitude": "1.5", "longitude": 2, "title": ""}) == {
        "latitude": 1.5, "longitude": 2.0}
    # placeholders: kept as given; the rendered content is checked for the receivers
    assert c.validate_unrendered("link", {"url": "{{ url }}", "title": "Hi {{ receiver_name }}"}) == {
        "url": "{{ url }}", "title": "Hi {{ receiver_name }}"}


def test_http_urls_only():
    assert c.is_http_url("https://example.com/a.png")
    assert not any(c.is_http_url(v) for v in ("javascript:alert(1)", "data:text/html,x", "http://", None, 3))
