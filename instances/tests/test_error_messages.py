"""Instance client errors reach users as translated sentences (F16): the admin action messages,
the API's error message and the exception's `user_message`, in Chinese; the technical
`[code] detail` form stays for logs and the instance's error_message column."""
import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import translation

from wework.testing.fixtures import login_verified
from instances import exceptions
from instances.protocol import ErrorCode
from instances.tests.factories import WeworkInstanceFactory

pytestmark = pytest.mark.django_db(transaction=True)

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


def test_every_protocol_code_has_a_translated_sentence():
    codes = [v for k, v in vars(ErrorCode).items() if k.isupper()]
    assert set(codes) <= set(exceptions.USER_MESSAGES)
    with translation.override("zh-hans"):
        for code in codes:
            text = exceptions.exception_for(code, "why").user_message
            assert text and not text.isascii(), (code, text)
            assert f"[{code}]" not in text


def test_user_message_hides_transport_detail_and_str_stays_technical():
    exc = exceptions.InstanceUnreachable("Could not reach http://10.0.0.9:1: refused", command="restart")
    assert str(exc) == "restart: [unreachable] Could not reach http://10.0.0.9:1: refused"
    with translation.override("zh-hans"):
        text = exc.user_message
        assert text.startswith("无法连接实例") and "refused" not in text
        assert "[unreachable]" not in text and "restart" not in text
        limited = exceptions.RateLimited("slow down", retry_after_s=30).user_message
        assert "30" in limited and "slow down" not in limited
    with translation.override("en"):
        assert exc.user_message.startswith("Could not talk to the instance")


def test_transport_failures_read_alike_whatever_listens_on_the_port():
    """Issue 12: refused (nothing listens), silent (filtered) and a non-protocol answer (another
    service listens) must not be told apart by the user's sentence."""
    texts = {
        exceptions.InstanceUnreachable("Connection refused to http://10.0.0.9:22").user_message,
        exceptions.InstanceTimeout("read timed out after 5 s").user_message,
        exceptions.InstanceError("HTTP 200 text/html: <title>Redis</title>",
                                 code=exceptions.ErrorCode.INVALID_RESPONSE).user_message,
    }
    assert len(texts) == 1


@pytest.fixture
def root_client(client, admin_user):
    login_verified(client, admin_user)
    return client


def _flash(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_admin_action_messages_in_chinese(root_client, admin_user):
    from simulator.testing import unused_port

    bad_url = WeworkInstanceFactory(name="bad-url", api_url="ftp://example.com", created_by=admin_user)
    down = WeworkInstanceFactory(name="down", api_url=f"http://127.0.0.1:{unused_port()}",
                                 created_by=admin_user)
    url = reverse("admin:instances_weworkinstance_changelist")
    with translation.override("zh-hans"):
        response = root_client.post(url, {"action": "restart_selected", "confirmed": "yes",
                                          "_selected_action": [bad_url.pk, down.pk]}, **ZH)
    messages = _flash(response)
    bad = next(m for m in messages if m.startswith("bad-url"))
    assert "请求无效" in bad and "[invalid_request]" not in bad and "ftp://example.com" in bad
    unreachable = next(m for m in messages if m.startswith("down"))
    assert "无法连接实例" in unreachable and "[unreachable]" not in unreachable
    # the instance keeps the technical form for diagnosis
    down.refresh_from_db()
    assert "[unreachable]" in (down.error_message or "")


def test_api_error_message_in_chinese(root_client, admin_user):
    from simulator.testing import unused_port

    instance = WeworkInstanceFactory(api_url=f"http://127.0.0.1:{unused_port()}", created_by=admin_user)
    with translation.override("zh-hans"):
        response = root_client.post(f"/api/v1/instances/{instance.pk}/restart/", **ZH)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "unreachable" and error["message"].startswith("无法连接实例")
