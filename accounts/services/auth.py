"""Password logins: throttling per IP and per username, lockout, login history."""
import ipaddress
import logging
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import LoginLog, LoginResult, User, UserStatus

log = logging.getLogger("accounts.auth")


def lockout_threshold() -> int:
    return getattr(settings, "ACCESS_LOCKOUT_THRESHOLD", 5)


def lockout_duration() -> timedelta:
    return timedelta(minutes=getattr(settings, "ACCESS_LOCKOUT_MINUTES", 15))


# --- Request facts ---------------------------------------------------------------------------


def client_ip(request: HttpRequest | None) -> str:
    """The client address: REMOTE_ADDR, or the X-Forwarded-For entry added by the last of
    ACCESS_TRUSTED_PROXIES trusted proxies (0 by default: the header is ignored)."""
    if request is None:
        return "0.0.0.0"
    meta = request.META
    hops = getattr(settings, "ACCESS_TRUSTED_PROXIES", 0)
    if hops:
        forwarded = [p.strip() for p in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
        if len(forwarded) >= hops:
            candidate = forwarded[-hops]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                pass
    return (meta.get("REMOTE_ADDR") or "0.0.0.0")[:45]


def user_agent(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    return request.META.get("HTTP_USER_AGENT", "")[:2000]


def location_of(ip: str) -> str | None:
    """A coarse location. No GeoIP database ships with the platform: private and loopback
    addresses are named, public ones left empty (plug a resolver in ACCESS_LOCATION_RESOLVER)."""
    resolver = getattr(settings, "ACCESS_LOCATION_RESOLVER", None)
    if callable(resolver):
        return (resolver(ip) or None) and str(resolver(ip))[:200]
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.is_loopback:
        return "loopback"
    if addr.is_private:
        return "private network"
    return None


# --- Throttling (fixed windows in the cache: Redis in production) ----------------------------


def _rate(name, default):
    count, seconds = getattr(settings, name, default)
    return int(count), int(seconds)


def hit(scope: str, ident: str, limit: int, window: int) -> bool:
    """Count one attempt; True while within `limit` per `window` seconds."""
    key = f"thr:{scope}:{ident}"
    if cache.add(key, 1, window):
        return 1 <= limit
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, window)
        count = 1
    return count <= limit


def allow_login_attempt(ip: str, username: str | None, scope: str = "login") -> bool:
    ip_ok = hit(f"{scope}:ip", ip, *_rate("ACCESS_LOGIN_RATE_PER_IP", (30, 60)))
    user_ok = hit(
        f"{scope}:user", (username or "").lower()[:50], *_rate("ACCESS_LOGIN_RATE_PER_USERNAME", (10, 60))
    )
    return ip_ok and user_ok


# --- Login history ---------------------------------------------------------------------------


def record_attempt(request: HttpRequest | None, username: str | None, result: str,
                   user: User | None = None, channel: str = "admin",
                   session_id: str | None = None) -> LoginLog:
    ip = client_ip(request)
    return LoginLog.objects.create(
        user=user,
        username=(username or "")[:50],
        success=result == LoginResult.SUCCESS,
        result=result,
        channel=channel,
        ip_address=ip,
        user_agent=user_agent(request) or None,
        location=location_of(ip),
        session_id=session_id,
    )


# --- Password check with lockout -------------------------------------------------------------


def check_password_login(request: HttpRequest | None, username: str | None, password: str | None,
                         channel: str = "admin", throttle: bool = True) -> User | None:
    """The user when the password is right and the account may log in, else None.

    Does not complete the login: a second factor may follow (`complete_login`). Every failure
    is recorded in the login history; wrong passwords count towards the lockout.
    """
    ip = client_ip(request)
    if throttle and not allow_login_attempt(ip, username):
        record_attempt(request, username, LoginResult.THROTTLED, channel=channel)
        if request is not None:
            request.login_throttled = True  # type: ignore[attr-defined]  # read by the login form
        return None
    user = User.objects.filter(username=username).first() if username else None
    if user is None:
        User().set_password(password)  # same cost as a real check: no user enumeration by timing
        record_attempt(request, username, LoginResult.BAD_CREDENTIALS, channel=channel)
        return None
    if user.is_locked:
        user.check_password(password)
        record_attempt(request, username, LoginResult.LOCKED, user=user, channel=channel)
        return None
    if not user.check_password(password):
        locked = register_failure(user)
        result = LoginResult.LOCKED_NOW if locked else LoginResult.BAD_CREDENTIALS
        record_attempt(request, username, result, user=user, channel=channel)
        return None
    if not user.is_active:
        record_attempt(request, username, LoginResult.INACTIVE, user=user, channel=channel)
        return None
    return user


@transaction.atomic
def register_failure(user: User, reason: str | None = None) -> bool:
    """Count a failed attempt; lock the account at the threshold. True when it locked now."""
    User.all_objects.filter(pk=user.pk).update(login_fail_count=F("login_fail_count") + 1)
    row = User.all_objects.select_for_update().only("id", "login_fail_count", "status").get(pk=user.pk)
    user.login_fail_count = row.login_fail_count
    if row.login_fail_count >= lockout_threshold() and row.status == UserStatus.ENABLED:
        until = timezone.now().replace(microsecond=0) + lockout_duration()
        User.all_objects.filter(pk=user.pk).audited_update(status=UserStatus.LOCKED, locked_until=until)
        user.status, user.locked_until = UserStatus.LOCKED, until
        log.warning("user %s locked until %s after %s failed logins", user.pk, until, row.login_fail_count)
        return True
    return False


def register_otp_failure(request: HttpRequest | None, user: User, channel: str = "admin") -> None:
    locked = register_failure(user)
    record_attempt(
        request, user.username, LoginResult.LOCKED_NOW if locked else LoginResult.BAD_OTP,
        user=user, channel=channel,
    )


def complete_login(request: HttpRequest | None, user: User, channel: str = "admin",
                   session_id: str | None = None) -> None:
    """After every factor passed: reset the failure count, lift an expired lock, remember the
    address, record the success."""
    now = timezone.now()
    ip = client_ip(request)
    changes = {"login_fail_count": 0, "last_login": now, "last_login_ip": ip}
    if user.status == UserStatus.LOCKED:
        # an expired lock lifted by this login: a status change, audited
        unlocked = {"status": UserStatus.ENABLED, "locked_until": None}
        User.all_objects.filter(pk=user.pk).audited_update(**unlocked)
        changes.update(unlocked)
    User.all_objects.filter(pk=user.pk).update(**changes)
    for field, value in changes.items():
        setattr(user, field, value)
    record_attempt(request, user.username, LoginResult.SUCCESS, user=user, channel=channel,
                   session_id=session_id)


@transaction.atomic
def unlock(user: User) -> None:
    """Lift a lock (audited); the rules of who may are in accounts.services.users."""
    User.all_objects.filter(pk=user.pk).audited_update(
        status=UserStatus.ENABLED, locked_until=None, login_fail_count=0
    )
    user.status, user.locked_until, user.login_fail_count = UserStatus.ENABLED, None, 0
    cache.delete(f"thr:login:user:{user.username.lower()}")
