"""factory-boy factories for scrm's models."""
import factory
from factory.django import DjangoModelFactory

from accounts.tests.factories import UserFactory
from contacts.tests.factories import WeworkAccountFactory
from instances.tests.factories import WeworkInstanceFactory
from scrm.models import (
    AutoReply,
    ContactTag,
    OptOut,
    OptOutKeyword,
    Segment,
    SensitiveWord,
    Tag,
    TagGroup,
    TagRule,
    WelcomeMessage,
    WelcomeSent,
)


class TagGroupFactory(DjangoModelFactory):
    class Meta:
        model = TagGroup

    name = factory.Sequence(lambda n: f"Group {n}")


class TagFactory(DjangoModelFactory):
    class Meta:
        model = Tag

    group = factory.SubFactory(TagGroupFactory)
    name = factory.Sequence(lambda n: f"tag{n}")


class ContactTagFactory(DjangoModelFactory):
    class Meta:
        model = ContactTag

    tag = factory.SubFactory(TagFactory)
    account = factory.SubFactory(WeworkAccountFactory)
    contact_wxid = factory.Sequence(lambda n: f"wxid_tagged{n}")


class TagRuleFactory(DjangoModelFactory):
    class Meta:
        model = TagRule

    name = factory.Sequence(lambda n: f"Rule {n}")
    tag = factory.SubFactory(TagFactory)
    account = factory.SubFactory(WeworkAccountFactory)
    keyword = "price"


class SegmentFactory(DjangoModelFactory):
    class Meta:
        model = Segment

    name = factory.Sequence(lambda n: f"Segment {n}")
    instance = factory.SubFactory(WeworkInstanceFactory)


class OptOutKeywordFactory(DjangoModelFactory):
    class Meta:
        model = OptOutKeyword

    keyword = factory.Sequence(lambda n: f"NOMORE{n}")


class OptOutFactory(DjangoModelFactory):
    class Meta:
        model = OptOut

    account = factory.SubFactory(WeworkAccountFactory)
    contact_wxid = factory.Sequence(lambda n: f"wxid_optout{n}")
    keyword = "TD"


class WelcomeMessageFactory(DjangoModelFactory):
    class Meta:
        model = WelcomeMessage

    account = factory.SubFactory(WeworkAccountFactory)
    content = "Welcome!"
    created_by = factory.SubFactory(UserFactory)


class WelcomeSentFactory(DjangoModelFactory):
    class Meta:
        model = WelcomeSent

    account = factory.SubFactory(WeworkAccountFactory)
    kind = "contact"
    target = factory.Sequence(lambda n: f"wxid_welcomed{n}")


class AutoReplyFactory(DjangoModelFactory):
    class Meta:
        model = AutoReply

    account = factory.SubFactory(WeworkAccountFactory)
    keyword = factory.Sequence(lambda n: f"hours{n}")
    reply = "We are open 9-18."
    created_by = factory.SubFactory(UserFactory)


class SensitiveWordFactory(DjangoModelFactory):
    class Meta:
        model = SensitiveWord

    word = factory.Sequence(lambda n: f"forbidden{n}")
