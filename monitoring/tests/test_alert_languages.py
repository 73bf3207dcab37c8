"""Alerts read in the reader's language, whichever process (and language) raised them."""
import datetime

import pytest
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_noop

from contacts.models import AccountStatus
from instances.tests.factories import WeworkInstanceFactory
from monitoring import services
from monitoring.models import AlertRecord, RuleType
from monitoring.notifications import render_markdown
from monitoring.tests.factories import AlertRuleFactory
from wework.i18n import Text, render_data

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def chinese_platform(settings):
    """The product's default platform language (the test settings use English)."""
    settings.LANGUAGE_CODE = "zh-hans"


def _offline_alert(name="门店A"):
    rule = AlertRuleFactory(name="instance.offline", rule_type=RuleType.INSTANCE_OFFLINE,
                            metric_name=None, threshold_value=3, duration_seconds=0)
    now = timezone.now()
    instance = WeworkInstanceFactory(name=name, heartbeat_interval=30,
                                     last_heartbeat=now - datetime.timedelta(minutes=10))
    return rule, now, instance


def test_text_renders_in_each_language_and_survives_json():
    text = Text(gettext_noop("Instance %(name)s is offline"), name="门店A")
    assert text.render_in("en") == "Instance 门店A is offline"
    assert text.render_in("zh-hans") == "实例 门店A 已离线"
    data = text.to_data()
    assert data == {"m": "Instance %(name)s is offline", "p": {"name": "门店A"}}
    with translation.override("en"):
        assert render_data(data, "fallback") == "Instance 门店A is offline"
    assert render_data(None, "stored") == "stored"
    assert render_data({"m": "%(missing)s", "p": {"other": 1}}, "stored") == "stored"  # unreadable


def test_a_rule_evaluated_in_an_english_request_stores_the_platform_language():
    rule, now, instance = _offline_alert()
    with translation.override("en"):  # e.g. "evaluate now" pressed in the English admin
        services.evaluate_rule(rule, now)
    record = AlertRecord.objects.get(rule_name="instance.offline")
    # The design's columns hold the platform's language (zh-hans), as beat would write them ...
    assert record.alert_title == "实例 门店A 已离线"
    # ... and each reader gets their own.
    with translation.override("en"):
        assert record.display_title == "Instance 门店A is offline"
        assert record.display_message.startswith("No heartbeat for ")
        assert record.source_label == f"Instance {instance.pk}"
    with translation.override("zh-hans"):
        assert record.display_title == "实例 门店A 已离线"
        assert record.source_label == f"实例 {instance.pk}"


def test_labels_inside_a_sentence_follow_the_reader():
    record, _ = services.fire_alert(
        "account.status", source_type="account", source_id=7,
        title=Text(gettext_noop("Account %(name)s is %(status)s"), name="小王",
                   status=Text.label(AccountStatus.BANNED.label)),
        message="m")
    with translation.override("zh-hans"):
        assert record.alert_title == record.display_title
    with translation.override("en"):
        assert record.display_title == "Account 小王 is Banned"
        assert record.source_label == "WeCom account 7"


def test_plain_strings_still_work_and_show_as_stored():
    record, _ = services.fire_alert("disk.full", source_type="host", source_id="db1",
                                    title="Disk full db1", message="95%")
    assert record.alert_i18n is None
    with translation.override("en"):
        assert record.display_title == "Disk full db1"


def test_admin_list_api_and_notification_speak_the_readers_language(verified_admin_client):
    client = verified_admin_client
    rule, now, instance = _offline_alert(name="shop-1")
    services.evaluate_rule(rule, now)
    record = AlertRecord.objects.get(rule_name="instance.offline")

    page = client.get(reverse("admin:monitoring_alertrecord_changelist"),
                      HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Instance shop-1 is offline" in page and f"Instance {instance.pk}" in page
    page = client.get(reverse("admin:monitoring_alertrecord_changelist"),
                      HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "实例 shop-1 已离线" in page

    body = client.get(reverse("api:alertrecord-detail", args=[record.pk]),
                      HTTP_ACCEPT_LANGUAGE="en").json()
    assert body["display_title"] == "Instance shop-1 is offline"
    assert body["alert_title"] == "实例 shop-1 已离线"
    assert body["source_label"] == f"Instance {instance.pk}"

    with translation.override("en"):  # a notification sent from an English request
        text = render_markdown(record)
    assert "实例 shop-1 已离线" in text and f"实例 {instance.pk}" in text
