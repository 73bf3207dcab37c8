"""The inbox and the conversation page in a real browser (chromium through Playwright), in
Chinese: a customer's message arrives while the inbox is open and shows up without a reload;
the operator opens it, tags the contact from the conversation's tag panel, and the next message
appears on the conversation page without a reload. Messages come through messaging's inbound
handler, as the webhook intake delivers them."""
import time
import uuid

import pytest
from django.utils import timezone, translation

from accounts.services import otp as otp_services
from contacts.models import AccountStatus, Contact, WeworkAccount
from instances.models import WeworkInstance
from messaging import inbound
from scrm.models import Tag, TagGroup
from scrm.services import tags
from wework import shards
from wework.ids import new_uuid
from wework.testing.fixtures import totp_code

from .conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "Browser-inbox-2026!"


def _t(message):
    with translation.override("zh-hans"):
        text = translation.gettext(message)
    assert text != message, f"not translated: {message!r}"
    return text


@pytest.fixture
def setup(live_server, drop_shards):
    from accounts.models import User

    admin = User.objects.create_user("inbox-operator", "i@example.com", PASSWORD, is_superuser=True)
    device = otp_services.create_confirmed_totp(admin)
    instance = WeworkInstance.objects.create(instance_uuid=new_uuid(), name="inbox", api_url="http://127.0.0.1:9",
                                             created_by=admin)
    account = WeworkAccount.objects.create(instance=instance, wxid="wxid_inbox_account", nickname="Shop",
                                           status=AccountStatus.ONLINE, is_logged_in=True)
    shards.bulk_create(Contact, [{"account_id": account.pk, "wxid": "wxid_customer", "nickname": "Customer Li",
                                  "contact_type": 1, "add_time": timezone.now()}], instance_id=instance.pk)
    Tag.objects.create(group=TagGroup.objects.create(name="stage"), name="interested")
    return {"admin": admin, "device": device, "instance": instance, "account": account, "url": live_server.url}


@pytest.fixture
def drop_shards():
    yield
    from wework.shards.testing import drop_shard_tables

    drop_shard_tables()


def _receive(setup, text):
    now_ms = int(time.time() * 1000)
    event = {"type": "message.received", "event_id": uuid.uuid4().hex, "account_id": setup["account"].wxid,
             "ts_ms": now_ms, "data": {
                 "message_id": uuid.uuid4().hex, "conversation_id": "wxid_customer", "conversation_type": "single",
                 "sender": {"id": "wxid_customer", "name": "Customer Li"}, "type": "text",
                 "content": {"text": text}, "sent_at_ms": now_ms}}
    assert inbound.handle_instance_event(setup["instance"], event)["stored"]


def test_inbox_and_conversation_update_without_a_reload(setup, new_page):
    page = new_page("zh-CN")
    base = setup["url"]
    page.goto(base + "/admin/")
    page.fill("#id_username", setup["admin"].username)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", totp_code(setup["device"]))
    page.click("#login-form [type=submit]")
    page.wait_for_selector("#dashboard")

    page.goto(base + "/messaging/inbox/")
    assert _t("No unread messages.") in page.inner_text("#inbox")
    _receive(setup, "Is the offer still on?")
    page.wait_for_selector("tr.inbox-new", timeout=30_000)
    assert "Customer Li" in page.inner_text("tr.inbox-new") and "Is the offer" in page.inner_text("tr.inbox-new")
    assert page.is_visible("#inbox-note")

    page.click("tr.inbox-new a.inbox-link")
    page.wait_for_selector("#thread")
    assert "Is the offer still on?" in page.inner_text("#thread")
    # the tag panel: add a tag to the contact
    assert _t("Customer tags") in page.inner_text("#tags")
    page.select_option("#scrm-add-tags", label="stage / interested")
    page.click("#scrm-tag-form [type=submit]")
    page.wait_for_selector("li.scrm-tag")
    assert "interested" in page.inner_text("#tags")
    assert tags.tags_of(setup["account"].pk, "wxid_customer") == ["interested"]
    # the next message appears at the top of the conversation
    _receive(setup, "Hello again")
    page.wait_for_selector("li.msg-new", timeout=30_000)
    assert "Hello again" in page.inner_text("#thread li.msg-new")
    # the conversation was read: the inbox is empty again
    wait_for(lambda: page.goto(base + "/messaging/inbox/") and _t("No unread messages.") in page.inner_text("#inbox"),
             what="the inbox empty after reading")
