"""Users with per-instance grants see the rows of sharded models (messages) of their instance."""
import uuid

import pytest
from django.utils import timezone

from messaging.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def setup(django_user_model):
    from accounts.services.permissions import grant_instance
    from contacts.models import AccountStatus, WeworkAccount
    from instances.models import WeworkInstance
    from wework import shards

    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    mine = WeworkInstance.objects.create(instance_uuid=str(uuid.uuid4()), name="mine", created_by=admin)
    other = WeworkInstance.objects.create(instance_uuid=str(uuid.uuid4()), name="other", created_by=admin)
    rows = {}
    for inst in (mine, other):
        account = WeworkAccount.objects.create(instance=inst, wxid=f"wxid_{inst.name}",
                                               status=AccountStatus.ONLINE, is_logged_in=True)
        rows[inst.name] = shards.create(
            Message, message_uuid=str(uuid.uuid4()), account_id=account.pk, chat_type=1,
            chat_wxid=f"c_{inst.name}", message_type="text", message_content=inst.name,
        )
    user = django_user_model.objects.create_user("op", "op@example.com", "pw-operator-123")
    grant_instance(user, mine, ["messaging.view_message"], granted_by=admin)
    return user, rows


def test_shard_models_keep_instance_path():
    from wework import shards

    model = shards.model_for(Message, timezone.now())
    assert model is not Message
    assert model.INSTANCE_PATH == Message.INSTANCE_PATH


def test_scoping_a_message_shard_keeps_the_granted_instance(setup):
    from accounts.scoping import scope_queryset
    from wework import shards

    user, rows = setup
    model = shards.model_for(Message, timezone.now())
    seen = set(scope_queryset(model.objects.all(), user, "messaging.view_message")
               .values_list("pk", flat=True))
    assert seen == {rows["mine"].pk}


def test_admin_message_list_of_an_instance_scoped_user(client, setup):
    user, rows = setup
    client.force_login(user)
    r = client.get("/admin/messaging/message/")
    assert r.status_code == 200
    assert rows["mine"].chat_wxid.encode() in r.content
    assert rows["other"].chat_wxid.encode() not in r.content
