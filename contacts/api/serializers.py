from rest_framework import serializers

from contacts.models import Contact, Group, GroupMember, WeworkAccount
from wework.api.serializers import ModelSerializer


class WeworkAccountSerializer(ModelSerializer):
    status_display = serializers.CharField(source="get_status_display", read_only=True)

    class Meta:
        model = WeworkAccount
        fields = [
            "id", "instance", "wxid", "nickname", "avatar_url", "phone", "email", "gender",
            "region", "signature", "qr_code_url", "status", "status_display", "is_logged_in",
            "login_method", "last_login_time", "last_sync_time", "contact_count", "group_count",
            "total_messages", "today_messages", "remark", "tags", "created_at", "updated_at",
        ]
        read_only_fields = fields


class ContactSerializer(ModelSerializer):
    class Meta:
        model = Contact
        fields = [
            "id", "account", "wxid", "nickname", "remark", "avatar_url", "phone", "gender",
            "region", "signature", "contact_type", "friend_status", "is_star", "is_top",
            "is_blocked", "add_source", "add_time", "last_chat_time", "chat_count", "tags",
            "custom_fields", "sync_status", "last_sync_time", "created_at", "updated_at",
        ]
        read_only_fields = fields


class GroupSerializer(ModelSerializer):
    class Meta:
        model = Group
        fields = [
            "id", "account", "group_wxid", "group_name", "group_avatar_url", "group_notice",
            "group_description", "member_count", "max_member_count", "owner_wxid", "my_role",
            "is_muted", "is_disturb_off", "join_time", "last_message_time", "message_count",
            "is_active", "tags", "custom_fields", "sync_status", "last_sync_time", "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class GroupMemberSerializer(ModelSerializer):
    class Meta:
        model = GroupMember
        fields = [
            "id", "group", "member_wxid", "member_nickname", "group_nickname",
            "member_avatar_url", "role", "join_time", "invite_by", "is_muted", "mute_until",
            "last_speak_time", "speak_count", "is_active", "tags", "created_at", "updated_at",
            "left_at",
        ]
        read_only_fields = fields


class SyncSerializer(serializers.Serializer):
    scopes = serializers.MultipleChoiceField(
        choices=["contacts", "groups", "members"], required=False
    )
    resume = serializers.BooleanField(required=False, default=True)


class StartLoginSerializer(serializers.Serializer):
    account_wxid = serializers.CharField(required=False, allow_blank=True, max_length=100)


class VerifyLoginSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=20)
