"""factory-boy factories for the messaging app (base tables; the shard layer has its own API)."""
import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from contacts.tests.factories import WeworkAccountFactory
from instances.tests.factories import UserFactory
from messaging.models import (
    ChatType,
    ConversationRead,
    Message,
    MessageReceiver,
    MessageTask,
    MessageTemplate,
    MessageType,
    ReceiverType,
    TaskType,
)
from wework.ids import new_uuid


class MessageTemplateFactory(DjangoModelFactory):
    class Meta:
        model = MessageTemplate

    template_uuid = factory.LazyFunction(new_uuid)
    name = factory.Sequence(lambda n: f"Template {n}")
    category = "greeting"
    message_type = MessageType.TEXT
    content = "Hello {{ name }}"  # messaging.rendering syntax: {{ name }} only
    variables = factory.LazyFunction(lambda: [{"name": "name", "required": True}])
    created_by = factory.SubFactory(UserFactory)


class MessageTaskFactory(DjangoModelFactory):
    class Meta:
        model = MessageTask

    task_uuid = factory.LazyFunction(new_uuid)
    task_name = factory.Sequence(lambda n: f"Task {n}")
    task_type = TaskType.SINGLE
    account = factory.SubFactory(WeworkAccountFactory)
    message_type = MessageType.TEXT
    message_content = "Hello"
    target_count = 1
    created_by = factory.SubFactory(UserFactory)


class MessageReceiverFactory(DjangoModelFactory):
    class Meta:
        model = MessageReceiver

    task = factory.SubFactory(MessageTaskFactory)
    receiver_type = ReceiverType.CONTACT
    receiver_wxid = factory.Sequence(lambda n: f"wxid_receiver{n}")
    receiver_name = factory.Sequence(lambda n: f"Receiver {n}")


class MessageFactory(DjangoModelFactory):
    class Meta:
        model = Message

    message_uuid = factory.LazyFunction(new_uuid)
    account = factory.SubFactory(WeworkAccountFactory)
    chat_type = ChatType.PRIVATE
    chat_wxid = factory.Sequence(lambda n: f"wxid_chat{n}")
    message_type = MessageType.TEXT
    message_content = "Hello"
    send_time = factory.LazyFunction(timezone.now)


class ConversationReadFactory(DjangoModelFactory):
    class Meta:
        model = ConversationRead

    account = factory.SubFactory(WeworkAccountFactory)
    chat_wxid = factory.Sequence(lambda n: f"wxid_peer{n}")
    last_read_message_id = 0
