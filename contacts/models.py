"""Account management tables of the design (账号管理): WeCom accounts, contacts, groups, members.

`contacts`, `groups` and `group_members` are sharded per instance by the shard layer
(`contacts_{instance_id}` ...); a group's members live in the same shard as the group.
`groups` is a reserved word in MySQL 8.0.2+: Django always quotes it. See docs/schema.md.
"""
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from wework.db.fields import DateTimeField, TextField, TinyIntegerField, UnsignedBigAutoField
from wework.db.models import SoftDeleteModel, TableIndex, TableUniqueConstraint


class Gender(models.IntegerChoices):
    UNKNOWN = 0, _("Unknown")
    MALE = 1, _("Male")
    FEMALE = 2, _("Female")


class AccountStatus(models.IntegerChoices):
    OFFLINE = 0, _("Offline")
    ONLINE = 1, _("Online")
    ABNORMAL = 2, _("Abnormal")
    BANNED = 3, _("Banned")


class LoginMethod(models.TextChoices):
    QRCODE = "qrcode", _("QR code")
    PHONE = "phone", _("Phone")


class ContactType(models.IntegerChoices):
    FRIEND = 1, _("Friend")
    GROUP_MEMBER = 2, _("Group member")
    OFFICIAL_ACCOUNT = 3, _("Official account")


class FriendStatus(models.IntegerChoices):
    NORMAL = 1, _("Normal")
    DELETED = 2, _("Deleted by the contact")
    BLOCKED = 3, _("Blocked by the contact")


class SyncStatus(models.IntegerChoices):
    NOT_SYNCED = 0, _("Not synced")
    SYNCED = 1, _("Synced")


class GroupRole(models.IntegerChoices):
    OWNER = 1, _("Owner")
    ADMIN = 2, _("Administrator")
    MEMBER = 3, _("Member")


def _created_at():
    return DateTimeField(
        _("created at"), default=timezone.now, db_default=Now(), editable=False,
        db_comment="创建时间",
    )


def _updated_at():
    return DateTimeField(_("updated at"), auto_now=True, db_default=Now(), db_comment="更新时间")


class WeworkAccount(SoftDeleteModel):
    """A WeCom account logged in (or once logged in) on an instance (企微账号表)."""

    INSTANCE_PATH = "instance"

    id = UnsignedBigAutoField(primary_key=True, db_comment="账号ID")
    instance = models.ForeignKey(
        "instances.WeworkInstance",
        on_delete=models.DB_CASCADE,
        db_index=False,
        related_name="accounts",
        verbose_name=_("instance"),
        db_comment="实例ID",
    )
    wxid = models.CharField(_("WeCom ID"), max_length=100, db_comment="微信ID")
    nickname = models.CharField(
        _("nickname"), max_length=100, null=True, blank=True, db_comment="昵称"
    )
    avatar_url = models.CharField(
        _("avatar URL"), max_length=500, null=True, blank=True, db_comment="头像URL"
    )
    phone = models.CharField(_("phone"), max_length=20, null=True, blank=True, db_comment="手机号")
    email = models.CharField(_("email"), max_length=100, null=True, blank=True, db_comment="邮箱")
    gender = TinyIntegerField(
        _("gender"), choices=Gender.choices, null=True, blank=True,
        db_comment="性别: 0-未知, 1-男, 2-女",
    )
    region = models.CharField(
        _("region"), max_length=100, null=True, blank=True, db_comment="地区"
    )
    signature = TextField(_("signature"), null=True, blank=True, db_comment="个性签名")
    qr_code_url = models.CharField(
        _("QR code URL"), max_length=500, null=True, blank=True, db_comment="二维码URL"
    )
    status = TinyIntegerField(
        _("status"),
        choices=AccountStatus.choices,
        default=AccountStatus.OFFLINE,
        db_default=AccountStatus.OFFLINE,
        db_comment="状态: 0-离线, 1-在线, 2-异常, 3-被封",
    )
    is_logged_in = models.BooleanField(
        _("logged in"), default=False, db_default=False, db_comment="是否已登录"
    )
    login_method = models.CharField(
        _("login method"), max_length=20, choices=LoginMethod.choices, null=True, blank=True,
        db_comment="登录方式: qrcode, phone",
    )
    last_login_time = DateTimeField(
        _("last login"), null=True, blank=True, db_comment="最后登录时间"
    )
    last_sync_time = DateTimeField(
        _("last sync"), null=True, blank=True, db_comment="最后同步时间"
    )
    contact_count = models.IntegerField(
        _("contacts"), default=0, db_default=0, db_comment="联系人数量"
    )
    group_count = models.IntegerField(_("groups"), default=0, db_default=0, db_comment="群聊数量")
    total_messages = models.BigIntegerField(
        _("total messages"), default=0, db_default=0, db_comment="总消息数"
    )
    today_messages = models.IntegerField(
        _("messages today"), default=0, db_default=0, db_comment="今日消息数"
    )
    remark = TextField(_("remark"), null=True, blank=True, db_comment="备注")
    tags = models.JSONField(_("tags"), null=True, blank=True, db_comment="标签")
    created_at = _created_at()
    updated_at = _updated_at()

    class Meta:
        db_table = "wework_accounts"
        db_table_comment = "企微账号表"
        verbose_name = _("WeCom account")
        verbose_name_plural = _("WeCom accounts")
        base_manager_name = "all_objects"
        constraints = [
            TableUniqueConstraint(fields=["instance", "wxid"], name="uk_instance_wxid"),
        ]
        indexes = [
            TableIndex(fields=["nickname"], name="idx_nickname"),
            TableIndex(fields=["status"], name="idx_status"),
            TableIndex(fields=["is_logged_in"], name="idx_logged_in"),
            TableIndex(fields=["last_login_time"], name="idx_last_login"),
            TableIndex(fields=["deleted_at"], name="idx_deleted"),
        ]

    def __str__(self):
        return self.nickname or self.wxid


class Contact(SoftDeleteModel):
    """A contact of a WeCom account (联系人表); sharded per instance."""

    INSTANCE_PATH = "account__instance"

    id = UnsignedBigAutoField(primary_key=True, db_comment="联系人ID")
    account = models.ForeignKey(
        WeworkAccount,
        on_delete=models.DB_CASCADE,
        db_index=False,
        related_name="contacts",
        verbose_name=_("account"),
        db_comment="账号ID",
    )
    wxid = models.CharField(_("WeCom ID"), max_length=100, db_comment="微信ID")
    nickname = models.CharField(
        _("nickname"), max_length=100, null=True, blank=True, db_comment="昵称"
    )
    remark = models.CharField(
        _("remark name"), max_length=100, null=True, blank=True, db_comment="备注名"
    )
    avatar_url = models.CharField(
        _("avatar URL"), max_length=500, null=True, blank=True, db_comment="头像URL"
    )
    phone = models.CharField(_("phone"), max_length=20, null=True, blank=True, db_comment="手机号")
    gender = TinyIntegerField(
        _("gender"), choices=Gender.choices, null=True, blank=True,
        db_comment="性别: 0-未知, 1-男, 2-女",
    )
    region = models.CharField(
        _("region"), max_length=100, null=True, blank=True, db_comment="地区"
    )
    signature = TextField(_("signature"), null=True, blank=True, db_comment="个性签名")
    contact_type = TinyIntegerField(
        _("contact type"),
        choices=ContactType.choices,
        default=ContactType.FRIEND,
        db_default=ContactType.FRIEND,
        db_comment="联系人类型: 1-好友, 2-群成员, 3-公众号",
    )
    friend_status = TinyIntegerField(
        _("friend status"), choices=FriendStatus.choices, null=True, blank=True,
        db_comment="好友状态: 1-正常, 2-被删除, 3-被拉黑",
    )
    is_star = models.BooleanField(_("starred"), default=False, db_default=False, db_comment="是否星标")
    is_top = models.BooleanField(_("pinned"), default=False, db_default=False, db_comment="是否置顶")
    is_blocked = models.BooleanField(
        _("blocked"), default=False, db_default=False, db_comment="是否拉黑"
    )
    add_source = models.CharField(
        _("added via"), max_length=50, null=True, blank=True, db_comment="添加来源"
    )
    add_time = DateTimeField(_("added at"), null=True, blank=True, db_comment="添加时间")
    last_chat_time = DateTimeField(
        _("last chat"), null=True, blank=True, db_comment="最后聊天时间"
    )
    chat_count = models.IntegerField(_("chats"), default=0, db_default=0, db_comment="聊天次数")
    tags = models.JSONField(_("tags"), null=True, blank=True, db_comment="标签")
    custom_fields = models.JSONField(
        _("custom fields"), null=True, blank=True, db_comment="自定义字段"
    )
    sync_status = TinyIntegerField(
        _("sync status"),
        choices=SyncStatus.choices,
        default=SyncStatus.NOT_SYNCED,
        db_default=SyncStatus.NOT_SYNCED,
        db_comment="同步状态: 0-未同步, 1-已同步",
    )
    last_sync_time = DateTimeField(
        _("last sync"), null=True, blank=True, db_comment="最后同步时间"
    )
    created_at = _created_at()
    updated_at = _updated_at()

    class Meta:
        db_table = "contacts"
        db_table_comment = "联系人表"
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        base_manager_name = "all_objects"
        constraints = [
            TableUniqueConstraint(fields=["account", "wxid"], name="uk_account_wxid"),
        ]
        indexes = [
            TableIndex(fields=["nickname"], name="idx_nickname"),
            TableIndex(fields=["remark"], name="idx_remark"),
            TableIndex(fields=["contact_type"], name="idx_type"),
            TableIndex(fields=["friend_status"], name="idx_friend_status"),
            TableIndex(fields=["last_chat_time"], name="idx_last_chat"),
            TableIndex(fields=["sync_status"], name="idx_sync_status"),
            TableIndex(fields=["deleted_at"], name="idx_deleted"),
        ]

    def __str__(self):
        return self.remark or self.nickname or self.wxid


class Group(SoftDeleteModel):
    """A group chat a WeCom account belongs to (群聊表); sharded per instance.

    The table name `groups` is reserved in MySQL 8.0.2+; Django quotes every identifier.
    """

    INSTANCE_PATH = "account__instance"

    id = UnsignedBigAutoField(primary_key=True, db_comment="群聊ID")
    account = models.ForeignKey(
        WeworkAccount,
        on_delete=models.DB_CASCADE,
        db_index=False,
        related_name="groups",
        verbose_name=_("account"),
        db_comment="账号ID",
    )
    group_wxid = models.CharField(_("group WeCom ID"), max_length=100, db_comment="群微信ID")
    group_name = models.CharField(
        _("group name"), max_length=200, null=True, blank=True, db_comment="群名称"
    )
    group_avatar_url = models.CharField(
        _("group avatar URL"), max_length=500, null=True, blank=True, db_comment="群头像URL"
    )
    group_notice = TextField(_("group notice"), null=True, blank=True, db_comment="群公告")
    group_description = TextField(
        _("group description"), null=True, blank=True, db_comment="群描述"
    )
    member_count = models.IntegerField(
        _("members"), default=0, db_default=0, db_comment="成员数量"
    )
    max_member_count = models.IntegerField(
        _("max members"), default=500, db_default=500, db_comment="最大成员数"
    )
    owner_wxid = models.CharField(
        _("owner WeCom ID"), max_length=100, null=True, blank=True, db_comment="群主微信ID"
    )
    my_role = TinyIntegerField(
        _("my role"),
        choices=GroupRole.choices,
        default=GroupRole.MEMBER,
        db_default=GroupRole.MEMBER,
        db_comment="我的角色: 1-群主, 2-管理员, 3-成员",
    )
    is_muted = models.BooleanField(_("muted"), default=False, db_default=False, db_comment="是否被禁言")
    is_disturb_off = models.BooleanField(
        _("do not disturb"), default=False, db_default=False, db_comment="是否免打扰"
    )
    join_time = DateTimeField(_("joined at"), null=True, blank=True, db_comment="入群时间")
    last_message_time = DateTimeField(
        _("last message"), null=True, blank=True, db_comment="最后消息时间"
    )
    message_count = models.BigIntegerField(
        _("messages"), default=0, db_default=0, db_comment="消息数量"
    )
    is_active = models.BooleanField(_("active"), default=True, db_default=True, db_comment="是否活跃")
    tags = models.JSONField(_("tags"), null=True, blank=True, db_comment="标签")
    custom_fields = models.JSONField(
        _("custom fields"), null=True, blank=True, db_comment="自定义字段"
    )
    sync_status = TinyIntegerField(
        _("sync status"),
        choices=SyncStatus.choices,
        default=SyncStatus.NOT_SYNCED,
        db_default=SyncStatus.NOT_SYNCED,
        db_comment="同步状态: 0-未同步, 1-已同步",
    )
    last_sync_time = DateTimeField(
        _("last sync"), null=True, blank=True, db_comment="最后同步时间"
    )
    created_at = _created_at()
    updated_at = _updated_at()

    class Meta:
        db_table = "groups"
        db_table_comment = "群聊表"
        verbose_name = _("group chat")
        verbose_name_plural = _("group chats")
        base_manager_name = "all_objects"
        constraints = [
            TableUniqueConstraint(fields=["account", "group_wxid"], name="uk_account_group"),
        ]
        indexes = [
            TableIndex(fields=["group_name"], name="idx_group_name"),
            TableIndex(fields=["member_count"], name="idx_member_count"),
            TableIndex(fields=["my_role"], name="idx_my_role"),
            TableIndex(fields=["last_message_time"], name="idx_last_message"),
            TableIndex(fields=["sync_status"], name="idx_sync_status"),
            TableIndex(fields=["deleted_at"], name="idx_deleted"),
        ]

    def __str__(self):
        return self.group_name or self.group_wxid


class GroupMember(models.Model):
    """A member of a group chat (群成员表); lives in the same per-instance shard as its group.

    Members who left keep their row with `left_at` set (the design has no `deleted_at` here).
    """

    INSTANCE_PATH = "group__account__instance"

    id = UnsignedBigAutoField(primary_key=True, db_comment="成员ID")
    group = models.ForeignKey(
        Group,
        on_delete=models.DB_CASCADE,
        db_index=False,
        related_name="members",
        verbose_name=_("group chat"),
        db_comment="群聊ID",
    )
    member_wxid = models.CharField(_("member WeCom ID"), max_length=100, db_comment="成员微信ID")
    member_nickname = models.CharField(
        _("nickname"), max_length=100, null=True, blank=True, db_comment="成员昵称"
    )
    group_nickname = models.CharField(
        _("nickname in group"), max_length=100, null=True, blank=True, db_comment="群内昵称"
    )
    member_avatar_url = models.CharField(
        _("avatar URL"), max_length=500, null=True, blank=True, db_comment="成员头像URL"
    )
    role = TinyIntegerField(
        _("role"),
        choices=GroupRole.choices,
        default=GroupRole.MEMBER,
        db_default=GroupRole.MEMBER,
        db_comment="角色: 1-群主, 2-管理员, 3-成员",
    )
    join_time = DateTimeField(_("joined at"), null=True, blank=True, db_comment="入群时间")
    invite_by = models.CharField(
        _("invited by"), max_length=100, null=True, blank=True, db_comment="邀请人微信ID"
    )
    is_muted = models.BooleanField(_("muted"), default=False, db_default=False, db_comment="是否被禁言")
    mute_until = DateTimeField(_("muted until"), null=True, blank=True, db_comment="禁言到期时间")
    last_speak_time = DateTimeField(
        _("last spoke"), null=True, blank=True, db_comment="最后发言时间"
    )
    speak_count = models.IntegerField(
        _("messages sent"), default=0, db_default=0, db_comment="发言次数"
    )
    is_active = models.BooleanField(_("active"), default=True, db_default=True, db_comment="是否活跃")
    tags = models.JSONField(_("tags"), null=True, blank=True, db_comment="标签")
    created_at = _created_at()
    updated_at = _updated_at()
    left_at = DateTimeField(_("left at"), null=True, blank=True, db_comment="退群时间")

    class Meta:
        db_table = "group_members"
        db_table_comment = "群成员表"
        verbose_name = _("group member")
        verbose_name_plural = _("group members")
        constraints = [
            TableUniqueConstraint(fields=["group", "member_wxid"], name="uk_group_member"),
        ]
        indexes = [
            TableIndex(fields=["member_wxid"], name="idx_member_wxid"),
            TableIndex(fields=["role"], name="idx_role"),
            TableIndex(fields=["join_time"], name="idx_join_time"),
            TableIndex(fields=["last_speak_time"], name="idx_last_speak"),
            TableIndex(fields=["left_at"], name="idx_left_at"),
        ]

    def __str__(self):
        return self.group_nickname or self.member_nickname or self.member_wxid
