"""Creating send tasks (services/sending.py) against the instance simulator: every message type,
@members, reply-to, schedules, templates with filters and personal values; refusals that create
nothing; the send-versus-broadcast permission."""
import pytest
from django.utils import timezone

from contacts.models import AccountStatus, Contact

from messaging import permissions
from messaging.errors import MessagingInvalid, SendPermissionDenied
from messaging.models import (
    Message, MessageReceiver, MessageTask, ReceiverSendStatus as RS, SendStatus, TaskStatus, TaskType,
)
from messaging.services import lifecycle, receivers, sending, templates
from wework import shards

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)

CONTENT = {
    "text": {"text": "hello"},
    "image": {"url": "https://cdn.example.com/a.png"},
    "video": {"url": "https://cdn.example.com/a.mp4", "duration_s": 3},
    "file": {"url": "https://cdn.example.com/a.pdf", "filename": "a.pdf"},
    "link": {"title": "Docs", "url": "https://example.com"},
    "card": None,  # a contact of the account, filled in the test
    "location": {"latitude": 39.9, "longitude": 116.4, "title": "Office"},
}


def _message_of(receiver):
    return shards.get(Message, receiver.message_id)


@pytest.mark.parametrize("mtype", sorted(CONTENT))
def test_send_each_type_to_a_contact(world, sim, mtype):
    content = CONTENT[mtype] or {"contact_id": world.contacts[1]}
    task = sending.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                message_type=mtype, content=content)
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED, task.error_message
    r = task.receivers.get()
    assert r.send_status == RS.SUCCESS
    m = _message_of(r)
    assert m.send_status == SendStatus.SUCCESS and m.message_type == mtype and m.task_id == task.pk
    record = sim.messages[sim.by_client_msg_id[m.message_uuid]]
    assert record["request"]["type"] == mtype and record["request"]["conversation_id"] == world.contacts[0]
    assert record["status"] == "sent"
    world.account.refresh_from_db()
    assert world.account.today_messages == 1 and world.account.total_messages == 1


def test_group_message_with_mentions_and_reply(world, sim):
    room = world.rooms[0]
    members = world.members[room][1:3]
    first = sending.send_message(world.admin, account=world.account, receiver_wxid=room, receiver_type="group",
                                 message_type="text", content="first")
    parent = _message_of(first.receivers.get())
    task = sending.send_message(world.admin, account=world.account, receiver_wxid=room, receiver_type="group",
                                message_type="text", content={"text": "hi all"}, at_members=members,
                                reply_to=parent.pk)
    m = _message_of(task.receivers.get())
    assert m.at_members == members and m.parent_message_id == parent.pk and m.chat_type == 2
    req = sim.messages[sim.by_client_msg_id[m.message_uuid]]["request"]
    assert req["mentions"] == members and req["conversation_type"] == "room"
    assert req["reply_to"]


def test_scheduled_message_waits_for_beat(world, sim):
    later = timezone.now() + timezone.timedelta(hours=1)
    task = sending.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                                message_type="text", content="later", scheduled_time=later)
    assert task.status == TaskStatus.PENDING
    lifecycle.kick()
    task.refresh_from_db()
    assert task.status == TaskStatus.PENDING and not sim.messages
    lifecycle.kick(now=later + timezone.timedelta(seconds=1))
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED
    assert _message_of(task.receivers.get()).is_scheduled


def test_broadcast_with_template_filters_and_personal_variables(world, sim):
    tmpl = templates.save_template(world.admin, {
        "name": "Promo", "category": "marketing", "message_type": "text", "tags": ["promo"],
        "content": "Hi {{ receiver_name }}, {{ offer }} in {{ city }}",
        "variables": [{"name": "offer"}, {"name": "city", "default": "Beijing"}],
    })
    assert tmpl.preview_content == "Hi «receiver_name», «offer» in Beijing"
    task = make_task(world, template=tmpl.pk, template_variables={"offer": "20% off"}, filters={"tags": ["vip"]})
    task.refresh_from_db()
    n_vip = (len(world.contacts) + 1) // 2
    assert task.target_count == n_vip and task.status == TaskStatus.COMPLETED
    assert task.success_count == n_vip and float(task.progress) == 100.0
    texts = {m["request"]["content"]["text"] for m in sim.messages.values()}
    assert all(t.endswith("20% off in Beijing") for t in texts) and len(texts) == n_vip
    tmpl.refresh_from_db()
    assert tmpl.use_count == 1 and tmpl.last_used_at is not None


def test_missing_template_variable_is_an_error_at_creation(world, sim):
    tmpl = templates.save_template(world.admin, {"name": "T", "message_type": "text", "content": "{{ code }}",
                                                 "variables": ["code"]})
    receivers_ = [{"wxid": world.contacts[0], "variables": {"code": "A1"}}, {"wxid": world.contacts[1]}]
    with pytest.raises(MessagingInvalid) as exc:
        make_task(world, template=tmpl.pk, receivers=receivers_)
    (message,) = exc.value.fields["template_variables"]
    assert "code" in message and world.contacts[1] in message and "for 1 receivers" in message
    assert not MessageTask.objects.exists() and not MessageReceiver.objects.exists()
    task = make_task(world, template=tmpl.pk, receivers=[receivers_[0]])
    assert sim.messages[next(iter(sim.messages))]["request"]["content"]["text"] == "A1"
    assert task.pk


@pytest.mark.parametrize("case,field", [
    ("unknown_account", "account"), ("unknown_receiver", "receivers"), ("offline", "account"),
    ("banned", "account"), ("zero", "receivers"), ("too_many", "receivers"), ("text_too_long", "content"),
    ("bad_type", "message_type"), ("both_lists", "receivers"), ("bad_priority", "priority"),
    ("disabled_template", "template"), ("unknown_reply", "reply_to"),
])
def test_bad_input_creates_nothing(world, case, field):
    fields = dict(account=world.account, message_type="text", content="x", receivers=[world.contacts[0]])
    if case == "unknown_account":
        fields["account"] = 999999
    elif case == "unknown_receiver":
        fields["receivers"] = [world.contacts[0], "wxid_nobody"]
    elif case in ("offline", "banned"):
        world.account.status = AccountStatus.OFFLINE if case == "offline" else AccountStatus.BANNED
        world.account.save()
    elif case == "zero":
        fields["receivers"] = []
    elif case == "too_many":
        fields["receivers"] = [f"wxid_{i}" for i in range(1_000_000)]
    elif case == "text_too_long":
        fields["content"] = "x" * 5000
    elif case == "bad_type":
        fields["message_type"] = "sticker"
    elif case == "both_lists":
        fields["filters"] = {"source": "contacts"}
    elif case == "bad_priority":
        fields["priority"] = 9
    elif case == "disabled_template":
        tmpl = templates.save_template(world.admin, {"name": "Off", "message_type": "text", "content": "x",
                                                     "status": 0})
        fields = dict(account=world.account, template=tmpl.pk, receivers=[world.contacts[0]])
    elif case == "unknown_reply":
        fields["reply_to"] = 123456789
    with pytest.raises(MessagingInvalid) as exc:
        make_task(world, **fields)
    assert field in exc.value.fields and exc.value.status == 400
    assert not MessageTask.objects.exists() and not MessageReceiver.objects.exists()


def test_unreachable_media_url_refused(world, settings):
    settings.MESSAGING = {**settings.MESSAGING, "CHECK_MEDIA_URLS": True, "MEDIA_CHECK_TIMEOUT_S": 1,
                          "MEDIA_CHECK_PRIVATE_HOSTS": True}  # the unreachable URL is a local one
    with pytest.raises(MessagingInvalid, match="cannot be reached"):
        sending.send_message(world.admin, account=world.account, receiver_wxid=world.contacts[0],
                             message_type="image", content={"url": "http://127.0.0.1:9/x.png"})
    assert not MessageTask.objects.exists()


def _mentions_task(world, task_receivers, at_members):
    return make_task(world, message_type="text", content={"text": "hi"}, receivers=task_receivers,
                     at_members=at_members, start=False)


def test_unknown_members_are_named_at_creation(world):
    room = world.rooms[0]
    member = world.members[room][0]
    with pytest.raises(MessagingInvalid) as err:
        _mentions_task(world, [{"wxid": room, "type": "group"}], [member, "wxid_not_member"])
    assert "wxid_not_member" in err.value.fields["at_members"][0]
    assert member not in err.value.fields["at_members"][0]
    # a member of one room but not of the other is named too
    other = next(m for m in world.members[world.rooms[1]] if m not in world.members[room])
    with pytest.raises(MessagingInvalid) as err:
        _mentions_task(world, [{"wxid": room, "type": "group"}, {"wxid": world.rooms[1], "type": "group"}], [other])
    assert other in err.value.fields["at_members"][0]
    assert not MessageTask.objects.exists()
    # valid mentions keep working, given as a list or as the page's comma-separated text
    task = _mentions_task(world, [{"wxid": room, "type": "group"}], [member])
    assert task.template_variables[receivers.MENTIONS_KEY] == [member]
    task = _mentions_task(world, [{"wxid": room, "type": "group"}], f" {member} ,")
    assert task.template_variables[receivers.MENTIONS_KEY] == [member]


@pytest.mark.parametrize("mentions", ["all", ["wxid_x"]])
def test_mentions_without_group_receivers_are_refused(world, mentions):
    with pytest.raises(MessagingInvalid) as err:
        _mentions_task(world, [{"wxid": world.contacts[0], "type": "contact"}], mentions)
    assert "group chat" in err.value.fields["at_members"][0]
    assert _mentions_task(world, [{"wxid": world.rooms[0], "type": "group"}], "all").pk


def test_the_service_checks_the_send_and_broadcast_permissions(world, make_operator):
    """The rule lives in the service: a single message needs send_message, anything else (a list
    of several, filters, a batch) send_broadcast, on the account's instance."""
    single_only = make_operator(permissions.SEND_MESSAGE, username="single_only")
    task = make_task(world, user=single_only, message_type="text", content="x", receivers=[world.contacts[0]],
                     start=False)
    assert task.task_type == TaskType.SINGLE and task.created_by == single_only
    for fields in ({"receivers": world.contacts[:2]}, {"filters": {"source": "groups"}},
                   {"receivers": world.contacts[:1], "task_type": TaskType.BATCH}):
        with pytest.raises(SendPermissionDenied, match="broadcast permission") as exc:
            make_task(world, user=single_only, message_type="text", content="x", start=False, **fields)
        assert exc.value.status == 403
    broadcaster = make_operator(permissions.SEND_BROADCAST, username="broadcaster")
    assert make_task(world, user=broadcaster, message_type="text", content="x", receivers=world.contacts[:2],
                     start=False).task_type == TaskType.BROADCAST
    with pytest.raises(SendPermissionDenied, match="may not send"):
        sending.send_message(broadcaster, account=world.account, receiver_wxid=world.contacts[0],
                             message_type="text", content="x")
    assert MessageTask.objects.count() == 2


def test_permission_is_checked_before_the_request(world, outsider):
    """A user without the permission learns nothing about the account's contacts."""
    with pytest.raises(SendPermissionDenied):
        make_task(world, user=outsider, message_type="text", content="x", receivers=["wxid_nobody"])


@pytest.mark.parametrize("use_filters", [False, True])
def test_receiver_name_is_the_customers_own_name_and_the_remark_only_when_asked(world, sim, use_filters):
    """An operator's private remark ("难缠, 催过两次") must never greet the customer by
    `{{ receiver_name }}`: that is their own nickname; `{{ receiver_remark }}` asks for the remark."""
    wxid = world.contacts[0]
    contact_model = shards.for_instance(Contact, world.instance.pk)
    contact_model.filter(account_id=world.account.pk, wxid=wxid).update(nickname="王小明", remark="难缠, 催过两次")
    contact_model.filter(account_id=world.account.pk).exclude(wxid=wxid).update(tags=[])
    contact_model.filter(account_id=world.account.pk, wxid=wxid).update(tags=["remark-test"])
    target = ({"filters": {"source": "contacts", "tags": ["remark-test"]}} if use_filters
              else {"receivers": [wxid]})
    task = make_task(world, message_type="text", content="你好 {{ receiver_name }} / {{ receiver_remark }}", **target)
    task.refresh_from_db()
    r = task.receivers.get()
    assert r.send_status == RS.SUCCESS and r.receiver_name == "王小明"
    assert _message_of(r).message_content == "你好 王小明 / 难缠, 催过两次"


def test_materialized_rows_carry_every_column_and_deleted_contacts_are_unknown(world, sim, settings):
    """The receiver rows written with constants inlined in the statement hold what the model
    would; a soft-deleted contact is refused like an unknown one (the raw lookup keeps the
    default manager's filter)."""
    from wework.db.layout import connection_for

    connection = connection_for("messaging")  # the receivers' database (per-module layout)
    from django.test.utils import CaptureQueriesContext

    contact_model = shards.for_instance(Contact, world.instance.pk)
    first, second, gone = world.contacts[:3]
    contact_model.filter(account_id=world.account.pk, wxid=second).update(nickname="Bo", remark="r2")
    contact_model.filter(account_id=world.account.pk, wxid=gone).update(deleted_at=timezone.now())
    with pytest.raises(MessagingInvalid) as exc:
        make_task(world, start=False, message_type="text", content="hi {{ code }}",
                  receivers=[{"wxid": first, "variables": {"code": 1}}, {"wxid": gone, "variables": {"code": 2}}])
    assert gone in str(exc.value)
    settings.MESSAGING = {**(getattr(settings, "MESSAGING", None) or {}), "MATERIALIZE_CHUNK": 1}
    with CaptureQueriesContext(connection) as queries:
        task = make_task(world, start=False, message_type="text", content="hi {{ receiver_name }} {{ code }}",
                         receivers=[{"wxid": first, "variables": {"code": "甲"}}, {"wxid": second, "variables": {}},
                                    {"wxid": second}],
                         template_variables={"code": "x"})
    inserts = [q for q in queries if q["sql"].startswith("INSERT INTO") and "message_receivers" in q["sql"]]
    assert len(inserts) == 2  # one statement per chunk
    rows = {r.receiver_wxid: r for r in MessageReceiver.objects.filter(task_id=task.pk)}
    assert set(rows) == {first, second}
    a, b = rows[first], rows[second]
    assert (a.receiver_type, a.send_status, a.retry_count, a.variables["code"]) == (1, RS.PENDING, 0, "甲")
    assert b.receiver_name == "Bo" and b.variables == {"receiver_remark": "r2"}
    assert a.created_at == a.updated_at == b.created_at
    assert abs((timezone.now() - a.created_at).total_seconds()) < 60


@pytest.mark.parametrize("n_known", [2, 40])  # 60 contacts: IN lists for 2, one read of the account's for 40
def test_explicit_receivers_resolve_alike_by_in_lists_or_one_read_of_the_account(world, n_known):
    """Both ways of checking explicit receivers give the same names and refuse the same wxids:
    a soft-deleted contact, another account's contact in the same shard, a wxid that differs
    only by case, and one with quotes, a backslash and a percent sign (escaped, not SQL)."""
    from contacts.models import WeworkAccount

    contact_model = shards.for_instance(Contact, world.instance.pk)
    known = world.contacts[:n_known]
    contact_model.filter(account_id=world.account.pk, wxid=known[0]).update(nickname="", remark="备注")
    contact_model.filter(account_id=world.account.pk, wxid=known[1]).update(nickname="Bo")
    gone = world.contacts[-1]
    contact_model.filter(account_id=world.account.pk, wxid=gone).update(deleted_at=timezone.now())
    other = WeworkAccount.objects.create(instance=world.instance, wxid="other-account")
    shards.bulk_create(Contact, [{"account_id": other.pk, "wxid": "wxid_of_other", "contact_type": 1}],
                       instance_id=world.instance.pk)
    odd = "50%'off\\\"x"
    strangers = [gone, "wxid_of_other", known[1].upper(), odd]
    with pytest.raises(MessagingInvalid) as exc:
        make_task(world, start=False, message_type="text", content="hi", receivers=[*known, *strangers])
    (message,) = exc.value.fields["receivers"]
    assert message.startswith("4 receivers") and all(w in message for w in strangers)
    awkward = "O'Brien \\ 100% \"q\" 张 %s"
    task = make_task(world, start=False, message_type="text", content="hi {{ receiver_name }}",
                     receivers=[known[0], {"wxid": known[1], "variables": {"code": awkward}},
                                *({"wxid": w, "name": awkward} for w in known[2:])])
    rows = {r.receiver_wxid: r for r in MessageReceiver.objects.filter(task_id=task.pk)}
    assert len(rows) == n_known
    assert rows[known[0]].receiver_name == known[0]  # no nickname: the wxid, never the remark
    assert rows[known[0]].variables == {"receiver_remark": "备注"}
    assert rows[known[1]].receiver_name == "Bo"
    assert rows[known[1]].variables["code"] == awkward  # quotes, backslash, % round-trip
    assert all(rows[w].receiver_name == awkward for w in known[2:])
