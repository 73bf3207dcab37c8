"""Private-domain operations (私域运营): tags, segments, opt-outs, welcome messages, keyword
auto-replies and sensitive words. Additions to the design, listed in docs/schema.md.

Tags are the platform's own (the runtime has no tag API): `scrm_contact_tags` holds who carries
which tag, and the design's `contacts.tags` column (a JSON list of tag names) is kept in step by
`services.tags`, so that everything reading the design's column (the broadcast audience's tag
filters) sees the same tags.
"""
from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from contacts.models import WeworkAccount
from instances.models import WeworkInstance
from messaging.models import MessageTask
from wework.db.fields import DateTimeField, TextField, UnsignedBigAutoField
from wework.db.models import CreatedAtModel, TableIndex, TableUniqueConstraint, TimestampedModel
from .validators import validate_color


class MatchType(models.TextChoices):
    EXACT = "exact", _("Exact")
    CONTAINS = "contains", _("Contains")


class TagSource(models.TextChoices):
    MANUAL = "manual", _("Set by an operator")
    RULE = "rule", _("Keyword rule")
    CAMPAIGN = "campaign", _("Campaign receivers")


class RuleKind(models.TextChoices):
    KEYWORD = "keyword", _("Keyword in a reply")
    CAMPAIGN = "campaign", _("Receivers of a campaign")


class WelcomeKind(models.TextChoices):
    CONTACT = "contact", _("New contact")
    GROUP = "group", _("Joined a group chat")


def _owner():
    return models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.DB_SET_NULL, null=True, blank=True,
                             related_name="+", verbose_name=_("created by"), db_comment="创建人")


class TagGroup(TimestampedModel):
    """A group of tags (标签组): "customer stage", "source", ..."""

    id = UnsignedBigAutoField(primary_key=True)
    name = models.CharField(_("name"), max_length=50, unique=True, db_comment="组名")
    sort_order = models.IntegerField(_("sort order"), default=0, db_comment="排序")

    class Meta:
        db_table = "scrm_tag_groups"
        db_table_comment = "标签组表"
        verbose_name = _("tag group")
        verbose_name_plural = _("tag groups")
        ordering = ["sort_order", "name"]

    def __str__(self):
        return self.name


class Tag(TimestampedModel):
    """A customer tag (客户标签); its name is what the design's `tags` columns hold."""

    id = UnsignedBigAutoField(primary_key=True)
    group = models.ForeignKey(TagGroup, on_delete=models.DO_NOTHING, related_name="tags",
                              verbose_name=_("tag group"), db_comment="标签组ID")
    name = models.CharField(_("name"), max_length=50, unique=True, db_comment="标签名")
    color = models.CharField(_("colour"), max_length=20, blank=True, default="", validators=[validate_color],
                             db_comment="颜色")
    sort_order = models.IntegerField(_("sort order"), default=0, db_comment="排序")

    class Meta:
        db_table = "scrm_tags"
        db_table_comment = "客户标签表"
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["sort_order", "name"]

    def __str__(self):
        return self.name


class ContactTag(CreatedAtModel):
    """A tag on a contact of an account (客户标签关系)."""

    INSTANCE_PATH = "account__instance"

    id = UnsignedBigAutoField(primary_key=True)
    tag = models.ForeignKey(Tag, on_delete=models.DB_CASCADE, related_name="contact_tags",
                            verbose_name=_("tag"), db_comment="标签ID")
    account = models.ForeignKey(WeworkAccount, on_delete=models.DB_CASCADE, related_name="+",
                                verbose_name=_("account"), db_comment="账号ID")
    contact_wxid = models.CharField(_("contact WeCom ID"), max_length=100, db_comment="联系人微信ID")
    source = models.CharField(_("source"), max_length=20, choices=TagSource.choices, default=TagSource.MANUAL,
                              db_comment="来源: manual, rule, campaign")

    class Meta:
        db_table = "scrm_contact_tags"
        db_table_comment = "客户标签关系表"
        verbose_name = _("contact tag")
        verbose_name_plural = _("contact tags")
        constraints = [TableUniqueConstraint(fields=["account", "contact_wxid", "tag"], name="uk_account_contact_tag")]
        indexes = [TableIndex(fields=["tag", "account"], name="idx_tag_account")]

    def __str__(self):
        return f"{self.contact_wxid}: {self.tag}"


class TagRule(TimestampedModel):
    """An automatic tag: contacts whose reply matches a keyword, or the receivers of a campaign."""

    INSTANCE_PATH = "account__instance"

    id = UnsignedBigAutoField(primary_key=True)
    name = models.CharField(_("name"), max_length=100, db_comment="规则名")
    kind = models.CharField(_("kind"), max_length=20, choices=RuleKind.choices, default=RuleKind.KEYWORD,
                            db_comment="类型: keyword, campaign")
    tag = models.ForeignKey(Tag, on_delete=models.DB_CASCADE, related_name="rules", verbose_name=_("tag"),
                            db_comment="标签ID")
    account = models.ForeignKey(WeworkAccount, on_delete=models.DB_CASCADE, related_name="+",
                                verbose_name=_("account"), db_comment="账号ID")
    keyword = models.CharField(_("keyword"), max_length=100, blank=True, default="", db_comment="关键词")
    match_type = models.CharField(_("match"), max_length=10, choices=MatchType.choices, default=MatchType.CONTAINS,
                                  db_comment="匹配方式: exact, contains")
    task = models.ForeignKey(MessageTask, on_delete=models.DB_CASCADE, null=True, blank=True, related_name="+",
                             verbose_name=_("campaign"), db_comment="群发任务ID")
    is_enabled = models.BooleanField(_("enabled"), default=True, db_comment="是否启用")
    applied_count = models.IntegerField(_("contacts tagged"), default=0, db_comment="已打标签数")
    created_by = _owner()

    class Meta:
        db_table = "scrm_tag_rules"
        db_table_comment = "自动标签规则表"
        verbose_name = _("tag rule")
        verbose_name_plural = _("tag rules")
        indexes = [TableIndex(fields=["account", "kind"], name="idx_account_kind")]

    def __str__(self):
        return self.name


class Segment(TimestampedModel):
    """A saved audience (客户分群): filters over one instance's contacts, usable as a
    broadcast's audience (`filters={"segment": id}`)."""

    INSTANCE_PATH = "instance"

    id = UnsignedBigAutoField(primary_key=True)
    name = models.CharField(_("name"), max_length=100, db_comment="分群名")
    instance = models.ForeignKey(WeworkInstance, on_delete=models.DB_CASCADE, related_name="+",
                                 verbose_name=_("instance"), db_comment="实例ID")
    account = models.ForeignKey(WeworkAccount, on_delete=models.DB_CASCADE, null=True, blank=True, related_name="+",
                                verbose_name=_("account"), db_comment="账号ID")
    tags_all = models.JSONField(_("with all of the tags"), default=list, blank=True, db_comment="包含全部标签")
    tags_any = models.JSONField(_("with any of the tags"), default=list, blank=True, db_comment="包含任一标签")
    tags_none = models.JSONField(_("with none of the tags"), default=list, blank=True, db_comment="不含标签")
    added_after = DateTimeField(_("added after"), null=True, blank=True, db_comment="添加时间起")
    added_before = DateTimeField(_("added before"), null=True, blank=True, db_comment="添加时间止")
    last_message_after = DateTimeField(_("last message after"), null=True, blank=True, db_comment="最后消息时间起")
    last_message_before = DateTimeField(_("last message before"), null=True, blank=True,
                                        db_comment="最后消息时间止")
    opted_out = models.BooleanField(_("opted out"), null=True, blank=True,
                                    db_comment="退订: NULL-不限, 1-已退订, 0-未退订")
    created_by = _owner()

    class Meta:
        db_table = "scrm_segments"
        db_table_comment = "客户分群表"
        verbose_name = _("segment")
        verbose_name_plural = _("segments")

    def __str__(self):
        return self.name


class OptOutKeyword(TimestampedModel):
    """A reply that opts a contact out of broadcasts (退订关键词): TD, 退订, ..."""

    id = UnsignedBigAutoField(primary_key=True)
    keyword = models.CharField(_("keyword"), max_length=50, unique=True, db_comment="关键词")
    match_type = models.CharField(_("match"), max_length=10, choices=MatchType.choices, default=MatchType.EXACT,
                                  db_comment="匹配方式: exact, contains")
    is_enabled = models.BooleanField(_("enabled"), default=True, db_comment="是否启用")

    class Meta:
        db_table = "scrm_opt_out_keywords"
        db_table_comment = "退订关键词表"
        verbose_name = _("opt-out keyword")
        verbose_name_plural = _("opt-out keywords")

    def __str__(self):
        return self.keyword


class OptOut(TimestampedModel):
    """A contact who opted out of an account's broadcasts and auto-replies (退订记录)."""

    INSTANCE_PATH = "account__instance"

    id = UnsignedBigAutoField(primary_key=True)
    account = models.ForeignKey(WeworkAccount, on_delete=models.DB_CASCADE, related_name="+",
                                verbose_name=_("account"), db_comment="账号ID")
    contact_wxid = models.CharField(_("contact WeCom ID"), max_length=100, db_comment="联系人微信ID")
    is_opted_out = models.BooleanField(_("opted out"), default=True, db_comment="是否退订中")
    keyword = models.CharField(_("keyword"), max_length=50, blank=True, default="", db_comment="触发关键词")
    event_id = models.CharField(_("event"), max_length=100, blank=True, default="", db_comment="来源事件ID")
    opted_out_at = DateTimeField(_("opted out at"), null=True, blank=True, db_comment="退订时间")
    opted_in_at = DateTimeField(_("opted back in at"), null=True, blank=True, db_comment="恢复订阅时间")
    confirmation_task = models.ForeignKey(MessageTask, on_delete=models.DB_SET_NULL, null=True, blank=True,
                                          related_name="+", verbose_name=_("confirmation"),
                                          db_comment="确认消息任务ID")

    class Meta:
        db_table = "scrm_opt_outs"
        db_table_comment = "退订记录表"
        verbose_name = _("opt-out")
        verbose_name_plural = _("opt-outs")
        constraints = [TableUniqueConstraint(fields=["account", "contact_wxid"], name="uk_account_contact")]
        indexes = [TableIndex(fields=["account", "is_opted_out"], name="idx_account_opted_out")]

    def __str__(self):
        return self.contact_wxid


class WelcomeMessage(TimestampedModel):
    """The welcome an account sends to each new contact, or to a group chat when someone joins
    (欢迎语)."""

    INSTANCE_PATH = "account__instance"

    id = UnsignedBigAutoField(primary_key=True)
    account = models.ForeignKey(WeworkAccount, on_delete=models.DB_CASCADE, related_name="+",
                                verbose_name=_("account"), db_comment="账号ID")
    kind = models.CharField(_("kind"), max_length=10, choices=WelcomeKind.choices, default=WelcomeKind.CONTACT,
                            db_comment="类型: contact, group")
    content = TextField(_("text"), db_comment="欢迎语内容")
    is_enabled = models.BooleanField(_("enabled"), default=True, db_comment="是否启用")
    created_by = _owner()

    class Meta:
        db_table = "scrm_welcome_messages"
        db_table_comment = "欢迎语表"
        verbose_name = _("welcome message")
        verbose_name_plural = _("welcome messages")
        constraints = [TableUniqueConstraint(fields=["account", "kind"], name="uk_account_kind")]

    def __str__(self):
        return f"{self.account}: {self.get_kind_display()}"


class WelcomeSent(CreatedAtModel):
    """One welcome sent (its unique key makes it once per contact, or per member and group)."""

    INSTANCE_PATH = "account__instance"

    id = UnsignedBigAutoField(primary_key=True)
    account = models.ForeignKey(WeworkAccount, on_delete=models.DB_CASCADE, related_name="+",
                                verbose_name=_("account"), db_comment="账号ID")
    kind = models.CharField(_("kind"), max_length=10, choices=WelcomeKind.choices, db_comment="类型")
    target = models.CharField(_("welcomed"), max_length=210, db_comment="联系人微信ID或群ID/成员ID")
    task = models.ForeignKey(MessageTask, on_delete=models.DB_SET_NULL, null=True, blank=True, related_name="+",
                             verbose_name=_("task"), db_comment="发送任务ID")

    class Meta:
        db_table = "scrm_welcomes_sent"
        db_table_comment = "欢迎语发送记录表"
        verbose_name = _("welcome sent")
        verbose_name_plural = _("welcomes sent")
        constraints = [TableUniqueConstraint(fields=["account", "kind", "target"], name="uk_account_kind_target")]

    def __str__(self):
        return self.target


class AutoReply(TimestampedModel):
    """A keyword auto-reply of an account (关键词自动回复)."""

    INSTANCE_PATH = "account__instance"

    id = UnsignedBigAutoField(primary_key=True)
    account = models.ForeignKey(WeworkAccount, on_delete=models.DB_CASCADE, related_name="+",
                                verbose_name=_("account"), db_comment="账号ID")
    keyword = models.CharField(_("keyword"), max_length=100, db_comment="关键词")
    match_type = models.CharField(_("match"), max_length=10, choices=MatchType.choices, default=MatchType.EXACT,
                                  db_comment="匹配方式: exact, contains")
    reply = TextField(_("reply"), db_comment="回复内容")
    sort_order = models.IntegerField(_("sort order"), default=0, db_comment="排序")
    is_enabled = models.BooleanField(_("enabled"), default=True, db_comment="是否启用")
    created_by = _owner()

    class Meta:
        db_table = "scrm_auto_replies"
        db_table_comment = "关键词自动回复表"
        verbose_name = _("auto-reply")
        verbose_name_plural = _("auto-replies")
        indexes = [TableIndex(fields=["account", "is_enabled"], name="idx_account_enabled")]

    def __str__(self):
        return self.keyword


class SensitiveWord(TimestampedModel):
    """A word no task or template may carry (敏感词)."""

    id = UnsignedBigAutoField(primary_key=True)
    word = models.CharField(_("word"), max_length=100, unique=True, db_comment="敏感词")
    is_enabled = models.BooleanField(_("enabled"), default=True, db_comment="是否启用")

    class Meta:
        db_table = "scrm_sensitive_words"
        db_table_comment = "敏感词表"
        verbose_name = _("sensitive word")
        verbose_name_plural = _("sensitive words")

    def __str__(self):
        return self.word
