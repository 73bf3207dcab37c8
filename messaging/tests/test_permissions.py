"""messaging/permissions.py on the platform's scoping: per-instance grants reach messaging rows
(also in message shards), the send-versus-broadcast rule and its sentences."""
import uuid

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from accounts.services.permissions import grant_instance
from contacts.models import AccountStatus, WeworkAccount
from instances.models import WeworkInstance
from messaging import permissions
from messaging.errors import SendPermissionDenied
from messaging.models import Message, TaskType
from wework import shards

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def setup(django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    mine = WeworkInstance.objects.create(instance_uuid=str(uuid.uuid4()), name="mine", created_by=admin)
    other = WeworkInstance.objects.create(instance_uuid=str(uuid.uuid4()), name="other", created_by=admin)
    accounts, rows = {}, {}
    for inst in (mine, other):
        account = accounts[inst.name] = WeworkAccount.objects.create(
            instance=inst, wxid=f"wxid_{inst.name}", status=AccountStatus.ONLINE, is_logged_in=True)
        rows[inst.name] = shards.create(
            Message, message_uuid=str(uuid.uuid4()), account_id=account.pk, chat_type=1,
            chat_wxid=f"c_{inst.name}", message_type="text", message_content=inst.name,
        )
    user = django_user_model.objects.create_user("op", "op@example.com", "pw-operator-123")
    grant_instance(user, mine, ["messaging.view_message", permissions.SEND_MESSAGE], granted_by=admin)
    return user, admin, accounts, rows


def test_scoping_a_message_shard_keeps_the_granted_instance(setup):
    user, _admin, _accounts, rows = setup
    model = shards.model_for(Message, timezone.now())
    seen = set(permissions.scope(model.objects.all(), user, "messaging.view_message").values_list("pk", flat=True))
    assert seen == {rows["mine"].pk}
    q = permissions.instance_q(user, "messaging.view_message", "account__instance_id")
    assert set(model.objects.filter(q).values_list("pk", flat=True)) == {rows["mine"].pk}


def test_may_and_may_use(setup):
    user, admin, accounts, _rows = setup
    mine, other = accounts["mine"].instance_id, accounts["other"].instance_id
    assert permissions.may(user, permissions.SEND_MESSAGE, mine)
    assert not permissions.may(user, permissions.SEND_MESSAGE, other)
    assert not permissions.may(user, permissions.SEND_BROADCAST, mine)
    assert permissions.may_use(user, permissions.SEND_MESSAGE) and permissions.may_compose(user)
    assert not permissions.may_use(user, permissions.MANAGE_TASK)
    assert permissions.may(admin, permissions.SEND_BROADCAST, other)
    assert list(permissions.accounts_for(user, permissions.SEND_MESSAGE)) == [accounts["mine"]]


def test_require_send_says_what_is_missing(setup):
    user, _admin, accounts, _rows = setup
    permissions.require_send(user, accounts["mine"], TaskType.SINGLE)
    with pytest.raises(SendPermissionDenied, match="broadcast needs the broadcast permission"):
        permissions.require_send(user, accounts["mine"], TaskType.BROADCAST)
    with pytest.raises(SendPermissionDenied, match="You may not send from this account."):
        permissions.require_send(user, accounts["other"], TaskType.SINGLE)
    assert permissions.send_permission(TaskType.BATCH) == permissions.SEND_BROADCAST


def test_anonymous_may_nothing(setup):
    anonymous = AnonymousUser()
    assert not permissions.may(anonymous, permissions.SEND_MESSAGE, 1)
    assert not permissions.may_compose(anonymous)
    assert permissions.previewable_templates(anonymous) is None
