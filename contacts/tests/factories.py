"""factory-boy factories for the contacts app (base tables; the shard layer has its own API)."""
import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from contacts.models import (
    AccountStatus,
    Contact,
    ContactType,
    FriendStatus,
    Gender,
    Group,
    GroupMember,
    GroupRole,
    WeworkAccount,
)
from instances.tests.factories import WeworkInstanceFactory


class WeworkAccountFactory(DjangoModelFactory):
    class Meta:
        model = WeworkAccount

    instance = factory.SubFactory(WeworkInstanceFactory)
    wxid = factory.Sequence(lambda n: f"wxid_account{n}")
    nickname = factory.Sequence(lambda n: f"Account {n}")
    gender = Gender.UNKNOWN
    status = AccountStatus.ONLINE
    is_logged_in = True
    login_method = "qrcode"
    last_login_time = factory.LazyFunction(timezone.now)
    tags = factory.LazyFunction(list)


class ContactFactory(DjangoModelFactory):
    class Meta:
        model = Contact

    account = factory.SubFactory(WeworkAccountFactory)
    wxid = factory.Sequence(lambda n: f"wxid_contact{n}")
    nickname = factory.Sequence(lambda n: f"Contact {n}")
    gender = Gender.FEMALE
    contact_type = ContactType.FRIEND
    friend_status = FriendStatus.NORMAL
    tags = factory.LazyFunction(lambda: ["customer"])


class GroupFactory(DjangoModelFactory):
    class Meta:
        model = Group

    account = factory.SubFactory(WeworkAccountFactory)
    group_wxid = factory.Sequence(lambda n: f"{10000000 + n}@chatroom")
    group_name = factory.Sequence(lambda n: f"Group {n}")
    member_count = 0
    my_role = GroupRole.OWNER


class GroupMemberFactory(DjangoModelFactory):
    class Meta:
        model = GroupMember

    group = factory.SubFactory(GroupFactory)
    member_wxid = factory.Sequence(lambda n: f"wxid_member{n}")
    member_nickname = factory.Sequence(lambda n: f"Member {n}")
    role = GroupRole.MEMBER
    join_time = factory.LazyFunction(timezone.now)
