"""TaskRequest (services/requests.py): the rules of a send task in one place, and the same
sentences from the service, the API and the compose page."""
import pytest
from django.urls import reverse

from messaging.api.serializers import SendMessageSerializer, TaskCreateSerializer
from messaging.errors import MessagingInvalid
from messaging.forms import ComposeForm
from messaging.models import TaskType
from messaging.services.requests import (
    MAX_RETRY_ERROR, PRIORITY_ERROR, SCHEDULE_HORIZON, SEND_INTERVAL_ERROR, TaskRequest, scheduled_time_error,
)

from .conftest import make_task

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("fields,errors", [
    ({"priority": 7}, {"priority": [str(PRIORITY_ERROR)]}),
    ({"send_interval": 3601}, {"send_interval": [str(SEND_INTERVAL_ERROR)]}),
    ({"max_retry": -1}, {"max_retry": [str(MAX_RETRY_ERROR)]}),
    ({"priority": "high"}, {"priority": ["Priority, interval and retries must be whole numbers."]}),
    ({"task_type": "blast"}, {"task_type": ["Unknown task type."]}),
    ({"receivers": ["a"], "filters": {"source": "groups"}},
     {"receivers": ["Give either a receiver list or filters, not both."]}),
    ({"at_members": [""]}, {"at_members": ["@members must be a list of member ids or \"all\"."]}),
    ({"priority": 1, "send_interval": 10, "max_retry": 0, "at_members": "a, b"}, {}),
])
def test_input_errors_without_the_database(fields, errors):
    assert TaskRequest(**fields).input_errors() == errors


def test_scheduled_time_within_the_grace_and_the_horizon():
    from datetime import datetime, timedelta, timezone as tz

    now = datetime(2026, 6, 1, 12, 0, tzinfo=tz.utc)
    assert scheduled_time_error(None, now) is None
    assert scheduled_time_error(now - timedelta(minutes=4), now) is None  # sent at once
    assert scheduled_time_error(now + SCHEDULE_HORIZON, now) is None
    assert "has passed" in scheduled_time_error(now - timedelta(minutes=6), now)
    assert "365 days ahead" in scheduled_time_error(now + SCHEDULE_HORIZON + timedelta(seconds=1), now)
    errors = TaskRequest(scheduled_time=datetime(2000, 1, 1, tzinfo=tz.utc)).input_errors()
    assert list(errors) == ["scheduled_time"]


def test_the_receiver_limit_is_checked_before_anything_else(settings):
    settings.MESSAGING = {"MAX_RECEIVERS_PER_TASK": 3}
    errors = TaskRequest(receivers=["a", "b", "c", "d"]).input_errors()
    assert errors == {"receivers": ["4 receivers is more than the limit of 3 per task; split the broadcast "
                                    "into several tasks."]}


@pytest.mark.parametrize("fields,task_type", [
    ({"receivers": ["a"]}, TaskType.SINGLE),
    ({"receivers": ["a", "b"]}, TaskType.BROADCAST),
    ({"filters": {"source": "contacts"}}, TaskType.BROADCAST),
    ({}, TaskType.BROADCAST),
    ({"receivers": ["a"], "task_type": TaskType.BATCH}, TaskType.BATCH),
])
def test_the_permission_follows_the_intended_task_type(fields, task_type):
    assert TaskRequest(**fields).permission_task_type() == task_type


def test_from_data_keeps_known_fields_and_defaults():
    request = TaskRequest.from_data({"account": 1, "receivers": ["a"], "priority": None, "unknown": 1})
    assert request.account == 1 and request.receivers == ["a"] and request.priority == 2 and request.max_retry == 3


def test_single_is_one_receiver_of_type_single():
    request = TaskRequest.single(account=1, receiver_wxid="room1", receiver_type="group", message_type="text",
                                 content="hi")
    assert request.receivers == [{"wxid": "room1", "type": "group"}] and request.task_type == TaskType.SINGLE


def test_clean_gives_what_the_service_writes(world):
    valid = TaskRequest(account=world.account, message_type="text", content="Hi {{ receiver_name }}",
                        receivers=world.contacts[:2], task_name="n" * 300, at_members=None).clean(world.account)
    assert valid.task_type == TaskType.BROADCAST and len(valid.receivers) == 2
    assert valid.body == {"text": "Hi {{ receiver_name }}"} and valid.task_name == "n" * 200
    assert (valid.priority, valid.send_interval, valid.max_retry) == (2, 0, 3)


@pytest.mark.parametrize("field,value,message", [
    ("priority", 9, PRIORITY_ERROR),
    ("send_interval", 4000, SEND_INTERVAL_ERROR),
])
def test_the_same_sentence_from_service_api_and_page(world, browser, field, value, message):
    """One rule, one message: the service, the API's 400 and the compose form say the same."""
    base = {"account": world.account.pk, "message_type": "text", "content": "x",
            "receivers": [{"wxid": world.contacts[0]}]}
    with pytest.raises(MessagingInvalid) as exc:
        make_task(world, **{**base, "account": world.account, field: value})
    assert exc.value.fields[field] == [str(message)]
    api = browser.post("/api/v1/messaging/tasks/", {**base, field: value}, content_type="application/json")
    assert api.status_code == 400 and api.json()[field] == [str(message)]
    page = browser.post(reverse("messaging:compose") + f"?account={world.account.pk}", {
        "account": world.account.pk, "contacts": [world.contacts[0]], "message_type": "text", "text": "x",
        "priority": 2, field: value})
    assert page.status_code == 200 and page.context["form"].errors[field] == [str(message)]


def test_serializers_and_form_run_the_request_checks(world):
    ser = TaskCreateSerializer(data={"account": 1, "receivers": [{"wxid": "a"}], "filters": {"source": "groups"}})
    assert not ser.is_valid() and ser.errors["receivers"] == ["Give either a receiver list or filters, not both."]
    ser = SendMessageSerializer(data={"account": 1, "receiver_wxid": "a", "message_type": "text", "content": "x",
                                      "at_members": [1, 2]})
    assert not ser.is_valid() and "at_members" in ser.errors
    too_many = ",".join(f"wxid_m{i}" for i in range(501))
    form = ComposeForm({"account": str(world.account.pk), "contacts": [world.contacts[0]], "message_type": "text",
                        "text": "x", "priority": 2, "at_members": too_many},
                       accounts=[world.account], contacts=[(world.contacts[0], "c")])
    assert not form.is_valid()
    assert form.errors["at_members"] == ["@members must be a list of member ids or \"all\"."]
