"""The messaging models: sharded message models keep their instance path, receivers explain
their failure in the user's words."""
import pytest
from django.utils import timezone, translation

from instances.exceptions import USER_MESSAGES
from messaging.models import Message, MessageReceiver
from wework import shards

from .factories import MessageReceiverFactory, MessageTaskFactory, MessageTemplateFactory


def test_shard_models_keep_instance_path(transactional_db):
    model = shards.model_for(Message, timezone.now())
    assert model is not Message
    assert model.INSTANCE_PATH == Message.INSTANCE_PATH == "account__instance"
    assert MessageReceiver.INSTANCE_PATH == "task__account__instance"


@pytest.mark.django_db
def test_failure_reason_of_a_protocol_code_and_of_the_platform():
    task = MessageTaskFactory()
    coded = MessageReceiverFactory(task=task, error_code="target_not_found", error_message="no contact x")
    own = MessageReceiverFactory(task=task, error_code="template_error", error_message="Missing: code")
    with translation.override("en"):
        assert coded.failure_reason.startswith(str(USER_MESSAGES["target_not_found"]))
        assert "no contact x" in coded.failure_reason
    assert own.failure_reason == "Missing: code"
    assert MessageReceiverFactory(task=task).failure_reason == ""


@pytest.mark.django_db
def test_names_read_in_lists():
    template = MessageTemplateFactory(name="Greeting")
    receiver = MessageReceiverFactory(receiver_name=None, receiver_wxid="wxid_r")
    assert str(template) == "Greeting" and str(receiver) == "wxid_r"
