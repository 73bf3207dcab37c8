"""scrm's admin: the contacts list's tag filters and actions, opt back in, rule forms refusing
sensitive words, a segment's live count."""
import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from contacts.models import Contact
from scrm.models import AutoReply, ContactTag, OptOut, WelcomeMessage
from scrm.services import optouts, tags
from scrm.tests.factories import SegmentFactory, SensitiveWordFactory, TagFactory
from wework import shards
from wework.testing.fixtures import login_verified

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser(world, client):
    login_verified(client, world.admin, sudo=True)
    return client


def _ids(world, wxids):
    return list(shards.for_instance(Contact, world.instance.pk).filter(wxid__in=wxids).values_list("pk", flat=True))


def _listed(browser, world, **params):
    page = browser.get(reverse("admin:contacts_contact_changelist"), {"instance": world.instance.pk, **params})
    assert page.status_code == 200
    return {c.wxid for c in page.context["cl"].result_list}


def test_contact_list_filters_by_tags(world, browser):
    TagFactory(name="vip"), TagFactory(name="lead")
    c = world.contacts
    tags.tag_contacts(world.admin, world.account, c[:4], ["vip"])
    tags.tag_contacts(world.admin, world.account, c[2:6], ["lead"])
    assert _listed(browser, world, tags_all="vip,lead") == set(c[2:4])
    assert _listed(browser, world, tags_any="vip,lead") == set(c[:6])
    assert _listed(browser, world, tags_none="vip") == set(c[4:])


def test_add_and_remove_tags_actions(world, browser):
    vip = TagFactory(name="vip")
    url = reverse("admin:contacts_contact_changelist") + f"?instance={world.instance.pk}"
    selected = _ids(world, world.contacts[:2])
    page = browser.post(url, {"action": "add_tags", ACTION_CHECKBOX_NAME: selected})
    assert page.status_code == 200 and b"tag-contacts" in page.content  # which tags?
    done = browser.post(url, {"action": "add_tags", ACTION_CHECKBOX_NAME: selected, "apply": "1",
                              "tags": [vip.pk]})
    assert done.status_code == 302
    assert set(ContactTag.objects.values_list("contact_wxid", flat=True)) == set(world.contacts[:2])
    assert "vip" in world.column_tags(world.contacts[1])
    browser.post(url, {"action": "remove_tags", ACTION_CHECKBOX_NAME: selected[:1], "apply": "1",
                       "tags": [vip.pk]})
    assert ContactTag.objects.count() == 1


def test_opt_out_from_the_contacts_list_and_back_in(world, browser):
    url = reverse("admin:contacts_contact_changelist") + f"?instance={world.instance.pk}"
    browser.post(url, {"action": "opt_out_selected", ACTION_CHECKBOX_NAME: _ids(world, world.contacts[:1])})
    row = OptOut.objects.get()
    assert row.is_opted_out and row.contact_wxid == world.contacts[0]
    browser.post(reverse("admin:scrm_optout_changelist"), {"action": "opt_in_selected", ACTION_CHECKBOX_NAME: [row.pk]})
    row.refresh_from_db()
    assert not row.is_opted_out
    assert not optouts.is_opted_out(world.account.pk, world.contacts[0])


def test_auto_reply_form_names_sensitive_words(world, browser):
    SensitiveWordFactory(word="稳赚")
    page = browser.post(reverse("admin:scrm_autoreply_add"), {
        "account": world.account.pk, "keyword": "hello", "match_type": "exact", "reply": "稳赚不赔",
        "sort_order": 0, "is_enabled": "on"})
    assert page.status_code == 200
    assert "稳赚" in str(page.context["adminform"].form.errors["reply"])
    assert not AutoReply.objects.exists()
    done = browser.post(reverse("admin:scrm_autoreply_add"), {
        "account": world.account.pk, "keyword": "hello", "match_type": "exact", "reply": "Hi!",
        "sort_order": 0, "is_enabled": "on"})
    assert done.status_code == 302 and AutoReply.objects.get().created_by == world.admin


def test_welcome_form_checks_the_text_as_its_send_does(world, browser):
    url = reverse("admin:scrm_welcomemessage_add")
    page = browser.post(url, {"account": world.account.pk, "kind": "contact", "content": "hi {{no_such_var}}",
                              "is_enabled": "on"})
    assert page.status_code == 200
    assert "no_such_var" in str(page.context["adminform"].form.errors["content"])
    assert not WelcomeMessage.objects.exists()
    done = browser.post(url, {"account": world.account.pk, "kind": "contact", "content": "Hi {{ receiver_name }}",
                              "is_enabled": "on"})
    assert done.status_code == 302 and WelcomeMessage.objects.get().created_by == world.admin


def test_segment_page_shows_its_live_count(world, browser):
    TagFactory(name="vip")
    tags.tag_contacts(world.admin, world.account, world.contacts[:3], ["vip"])
    segment = SegmentFactory(instance=world.instance, tags_any=["vip"])
    page = browser.get(reverse("admin:scrm_segment_change", args=[segment.pk]))
    assert page.status_code == 200
    assert page.context["adminform"].form.initial["tags_any"] == ["vip"]
    assert ">3<" in page.content.decode().replace(" ", "").replace("\n", "")


def test_compose_page_sends_to_a_segment_and_by_tags(world, browser):
    from messaging.models import MessageReceiver, MessageTask

    TagFactory(name="vip"), TagFactory(name="lead")
    tags.tag_contacts(world.admin, world.account, world.contacts[:3], ["vip"])
    tags.tag_contacts(world.admin, world.account, world.contacts[2:4], ["lead"])
    optouts.opt_out(world.account, world.contacts[0])
    segment = SegmentFactory(instance=world.instance, tags_any=["vip"])
    url = reverse("messaging:compose") + f"?account={world.account.pk}"
    base = {"account": world.account.pk, "use_filters": "on", "filter_source": "contacts", "message_type": "text",
            "text": "hi", "priority": 2, "confirmed": "1"}
    assert browser.post(url, {**base, "filter_segment": segment.pk}).status_code == 302
    assert browser.post(url, {**base, "filter_tags": "vip", "filter_tags_none": "lead"}).status_code == 302
    first, second = MessageTask.objects.exclude(task_type="single").order_by("id")
    assert set(MessageReceiver.objects.filter(task=first).values_list("receiver_wxid", flat=True)) == set(
        world.contacts[1:3])  # opted out left out
    assert set(MessageReceiver.objects.filter(task=second).values_list("receiver_wxid", flat=True)) == {
        world.contacts[1]}


def test_tag_and_segment_forms_refuse_bad_colours_and_reversed_date_ranges():
    from django.forms import modelform_factory

    from instances.tests.factories import WeworkInstanceFactory
    from scrm.forms import SegmentForm
    from scrm.models import Tag
    from scrm.tests.factories import TagGroupFactory

    group = TagGroupFactory()
    tag_form = modelform_factory(Tag, fields=["group", "name", "color"])
    assert not tag_form({"group": group.pk, "name": "vip", "color": "notacolor"}).is_valid()
    assert tag_form({"group": group.pk, "name": "vip", "color": "#1e90FF"}).is_valid()
    instance = WeworkInstanceFactory()
    form = SegmentForm({"name": "s", "instance": instance.pk,
                        "added_after": "2026-05-02 00:00:00", "added_before": "2026-05-01 00:00:00",
                        "last_message_after": "2026-05-01 00:00:00", "last_message_before": "2026-05-01 00:00:00"})
    assert not form.is_valid()
    assert set(form.errors) == {"added_before", "last_message_before"}
