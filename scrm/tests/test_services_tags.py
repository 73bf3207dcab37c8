"""Tags and segments through the services: the design's column in step, bulk, rules, filters."""
import pytest

from messaging.errors import MessagingInvalid
from messaging.models import MessageReceiver, TaskType
from messaging.services import sending
from messaging.services.requests import TaskRequest
from scrm.errors import ScrmInvalid, ScrmPermissionDenied
from scrm.models import ContactTag, Segment, TagRule, TagSource
from scrm.services import optouts, segments, tags

pytestmark = pytest.mark.django_db(transaction=True)


def test_tag_and_untag_keep_the_column_in_step(world, vip, lead):
    first, second = world.contacts[:2]
    assert tags.tag_contacts(world.admin, world.account, [first, second], ["vip", "lead"]) == 4
    assert world.column_tags(first) == ["synced", "lead", "vip"]  # a synced tag is kept
    assert world.column_tags(second) == ["lead", "vip"]
    assert tags.tag_contacts(world.admin, world.account, [first], [vip]) == 0  # already there
    assert tags.untag_contacts(world.admin, world.account, [first, second], [lead]) == 2
    assert world.column_tags(first) == ["synced", "vip"]
    assert tags.tags_of(world.account.pk, second) == ["vip"]


def test_bulk_tagging_is_chunked_and_audited(world, vip, settings):
    from monitoring.models import AuditLog

    settings.SCRM = {"TAG_CHUNK": 3}
    assert tags.tag_contacts(world.admin, world.account, world.contacts, [vip]) == len(world.contacts)
    assert all("vip" in world.column_tags(w) for w in world.contacts)
    log = AuditLog.objects.get(operation="scrm.contacts.tag")
    assert log.new_values["contacts"] == len(world.contacts)


def test_refusals_name_what_is_wrong(world, vip, django_user_model):
    with pytest.raises(ScrmInvalid) as exc:
        tags.tag_contacts(world.admin, world.account, ["nobody"], [vip])
    assert "nobody" in exc.value.fields["contacts"][0]
    with pytest.raises(ScrmInvalid) as exc:
        tags.tag_contacts(world.admin, world.account, world.contacts[:1], ["no-such-tag"])
    assert "no-such-tag" in exc.value.fields["tags"][0]
    stranger = django_user_model.objects.create_user("stranger", "s@example.com", "pw-stranger-123")
    with pytest.raises(ScrmPermissionDenied):
        tags.tag_contacts(stranger, world.account, world.contacts[:1], [vip])
    assert not ContactTag.objects.exists()


def test_broadcast_audience_all_any_none(world, vip, lead):
    c = world.contacts
    tags.tag_contacts(world.admin, world.account, c[:4], [vip])
    tags.tag_contacts(world.admin, world.account, c[2:6], [lead])

    def audience(**filters):
        task = sending.create_task(world.admin, TaskRequest(
            account=world.account, message_type="text", content={"text": "hi"}, filters=filters,
            task_type=TaskType.BROADCAST), start=False)
        return set(MessageReceiver.objects.filter(task=task).values_list("receiver_wxid", flat=True))

    assert audience(tags_all=["vip", "lead"]) == set(c[2:4])
    assert audience(tags=["vip", "lead"]) == set(c[:6])
    assert audience(tags=["vip"], tags_none=["lead"]) == set(c[:2])


def test_segment_count_and_audience(world, vip, lead):
    c = world.contacts
    tags.tag_contacts(world.admin, world.account, c[:5], [vip])
    tags.tag_contacts(world.admin, world.account, c[4:6], [lead])
    optouts.opt_out(world.account, c[0])
    segment = Segment.objects.create(name="VIPs not leads", instance=world.instance, tags_any=["vip"],
                                     tags_none=["lead"], opted_out=False)
    assert str(segments.count(segment)) == "3"
    capped = segments.count(segment, cap=2)
    assert capped.capped and capped.value == 2
    task = sending.create_task(world.admin, TaskRequest(
        account=world.account, message_type="text", content={"text": "hi"}, filters={"segment": segment.pk},
        task_type=TaskType.BROADCAST), start=False)
    assert set(MessageReceiver.objects.filter(task=task).values_list("receiver_wxid", flat=True)) == set(c[1:4])
    with pytest.raises(MessagingInvalid):
        sending.create_task(world.admin, TaskRequest(
            account=world.account, message_type="text", content={"text": "hi"}, filters={"segment": 999999},
            task_type=TaskType.BROADCAST), start=False)


def test_keyword_rule_tags_the_sender(world, vip):
    TagRule.objects.create(name="asks for the price", tag=vip, account=world.account, keyword="price")
    world.deliver(world.sim.say(world.account.wxid, "What is the PRICE of the course?"))
    row = ContactTag.objects.get(contact_wxid=world.contacts[0])
    assert row.tag == vip and row.source == TagSource.RULE
    assert "vip" in world.column_tags(world.contacts[0])


def test_campaign_rule_tags_its_receivers(world, lead):
    task = sending.create_task(world.admin, TaskRequest(
        account=world.account, message_type="text", content={"text": "hi"}, receivers=world.contacts[:3],
        task_type=TaskType.BROADCAST), start=False)
    rule = TagRule.objects.create(name="got the spring sale", kind="campaign", tag=lead, account=world.account,
                                  task=task)
    assert tags.apply_campaign_rule(world.admin, rule) == 3
    assert set(ContactTag.objects.values_list("contact_wxid", flat=True)) == set(world.contacts[:3])
    rule.refresh_from_db()
    assert rule.applied_count == 3


def test_a_strict_refusal_in_a_later_chunk_writes_nothing(world, vip, settings):
    settings.SCRM = {"TAG_CHUNK": 2}
    before = {w: world.column_tags(w) for w in world.contacts}
    with pytest.raises(ScrmInvalid) as exc:
        tags.tag_contacts(world.admin, world.account, [*world.contacts[:5], "nobody"], [vip])
    assert "nobody" in exc.value.fields["contacts"][0]
    assert not ContactTag.objects.exists()
    assert {w: world.column_tags(w) for w in world.contacts} == before
    # not strict: the stranger is skipped, and nothing at all is no error
    assert tags.tag_contacts(world.admin, world.account, ["nobody"], [vip], strict=False) == 0
    assert tags.tag_contacts(world.admin, world.account, [world.contacts[0], "nobody"], [vip], strict=False) == 1


def test_the_fast_path_leaves_the_column_as_the_join_table_says(world, vip, lead, settings):
    settings.SCRM = {"TAG_CHUNK": 3}
    tags.tag_contacts(world.admin, world.account, world.contacts, [vip])
    tags.tag_contacts(world.admin, world.account, world.contacts[::2], [lead, vip])
    tags.untag_contacts(world.admin, world.account, world.contacts[:4], [vip])
    tags.untag_contacts(world.admin, world.account, world.contacts[1:2], [lead])  # not carried: nothing
    # recomputing every column from the join table changes nothing
    assert tags.sync_column(world.account, world.contacts) == 0
    assert world.column_tags(world.contacts[0]) == ["synced", "lead"]
    assert world.column_tags(world.contacts[4]) == ["lead", "vip"]
    assert world.column_tags(world.contacts[5]) == ["vip"]
