"""User auth tables of the design (用户认证), one module per aggregate: users, roles (with
permissions and grants), sessions (with the login history), one-time password devices.

Extra tables and columns beyond `seed_schema.sql` are listed in docs/access-control.md
(section "Schema decisions") and docs/schema.md.
"""
from accounts.models.otp import BackupCode, BackupCodeDevice, EncryptedTOTPDevice, default_totp_key
from accounts.models.roles import (
    AllRolesManager, InstanceGrant, Permission, Role, RoleManager, RolePermission, RoleQuerySet,
    Status, UserRole, UserRoleQuerySet,
)
from accounts.models.sessions import LoginLog, LoginResult, SessionKind, UserSession
from accounts.models.users import AllUsersManager, User, UserManager, UserStatus

__all__ = [
    "AllRolesManager", "AllUsersManager", "BackupCode", "BackupCodeDevice", "EncryptedTOTPDevice",
    "InstanceGrant", "LoginLog", "LoginResult", "Permission", "Role", "RoleManager",
    "RolePermission", "RoleQuerySet", "SessionKind", "Status", "User", "UserManager",
    "UserRole", "UserRoleQuerySet", "UserSession", "UserStatus", "default_totp_key",
]
