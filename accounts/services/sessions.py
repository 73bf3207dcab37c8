"""API tokens and browser sessions on `user_sessions`.

Tokens: `wwa.<session_id>.<secret>` (access, ACCESS_TOKEN_SECONDS, default 1 h) and
`wwr.<session_id>.<secret>` (refresh, ACCESS_REFRESH_SECONDS, default 30 days). Only
HMAC-SHA256 digests are stored; a token is found by its public `session_id` and compared in
constant time, and every failure looks the same to the caller (AuthFailed).

Refresh rotates: the presented row is marked rotated and a new row joins the same family.
A rotated refresh token presented again revokes the whole family, unless it is the parent
of the family's newest row and was rotated less than ACCESS_REFRESH_GRACE_SECONDS ago
(two requests of one client racing): that attempt only fails.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts import tokens
from accounts.models import SessionKind, User, UserSession
from accounts.services.auth import client_ip, location_of, user_agent

BROWSER_SESSION_KEY = "wework_sid"


class AuthFailed(Exception):
    """Any token failure: unknown, malformed, wrong secret, expired, revoked, reused."""


def access_seconds() -> int:
    return int(getattr(settings, "ACCESS_TOKEN_SECONDS", 3600))


def refresh_seconds() -> int:
    return int(getattr(settings, "ACCESS_REFRESH_SECONDS", 30 * 24 * 3600))


def _now():
    return timezone.now()


def _session_row(user, request, kind, family_id=None, device_type=None, device_id=None,
                 expires_at=None, access_expires_at=None):
    sid = tokens.new_session_id()
    ip = client_ip(request)
    return UserSession(
        session_id=sid,
        user=user,
        device_type=(device_type or ("web" if kind == SessionKind.BROWSER else "api"))[:20],
        device_id=(device_id or None) and str(device_id)[:100],
        user_agent=user_agent(request) or None,
        ip_address=ip,
        location=location_of(ip),
        expires_at=expires_at,
        access_expires_at=access_expires_at,
        last_activity=_now(),
        is_active=True,
        kind=kind,
        family_id=family_id or sid,
    )


@transaction.atomic
def issue_tokens(user: User, request: HttpRequest | None, device_type: str | None = None,
                 device_id: str | None = None, family_id: str | None = None,
                 ) -> tuple[UserSession, str, str]:
    """A new API session. Returns (session, access_token, refresh_token)."""
    now = _now()
    row = _session_row(
        user, request, SessionKind.API, family_id, device_type, device_id,
        expires_at=now + timedelta(seconds=refresh_seconds()),
        access_expires_at=now + timedelta(seconds=access_seconds()),
    )
    access = tokens.compose(tokens.ACCESS_PREFIX, row.session_id, tokens.new_secret())
    refresh = tokens.compose(tokens.REFRESH_PREFIX, row.session_id, tokens.new_secret())
    row.access_token_hash = tokens.digest(access)
    row.refresh_token_hash = tokens.digest(refresh)
    row.save(force_insert=True)
    return row, access, refresh


def authenticate_access(token: str) -> tuple[User, UserSession]:
    """(user, session) for a valid access token; raises AuthFailed otherwise."""
    parsed = tokens.parse(token, tokens.ACCESS_PREFIX)
    if parsed is None:
        raise AuthFailed
    session_id, _token = parsed
    row = _lookup_api_session(session_id)
    if row is None:
        tokens.digest(token)  # same work as a found row
        raise AuthFailed
    if not tokens.matches(token, row.access_token_hash):
        raise AuthFailed
    now = _now()
    if (
        not row.is_active
        or row.revoked_at is not None
        or row.access_expires_at is None
        or row.access_expires_at <= now
        or row.expires_at <= now
        or not row.user.is_active
    ):
        raise AuthFailed
    touch(row, now)
    return row.user, row


_SENTINEL = "\x00session-id\x00"
_LOOKUPS: dict[str, Any] = {}


class _CompiledLookup:
    """The SELECT of an API session joined to its user, compiled once per database alias.

    Token authentication runs on every API request; compiling this 40-column query through
    the ORM costs about 1 ms, four times the query itself. The SQL, the column layout and the
    converters are taken from the ORM's own compiler once, then rows are turned into model
    instances with `from_db()`, as the ORM does.
    """

    def __init__(self, alias):
        qs = (
            UserSession.objects.using(alias).select_related("user")
            .filter(session_id=_SENTINEL, kind=SessionKind.API).order_by()[:1]
        )
        compiler = qs.query.get_compiler(alias)
        self.sql, params = compiler.as_sql()
        self.params = list(params)
        self.position = self.params.index(_SENTINEL)
        self.converters = compiler.get_converters([col for col, _sql, _alias in compiler.select])
        self.compiler = compiler
        info = compiler.klass_info
        self.session_cols = info["select_fields"]
        self.session_names = [compiler.select[i][0].target.attname for i in self.session_cols]
        user_info = info["related_klass_infos"][0]
        self.user_cols = user_info["select_fields"]
        self.user_names = [compiler.select[i][0].target.attname for i in self.user_cols]
        self.user_model = user_info["model"]
        self.alias = alias

    def fetch(self, session_id):
        from django.db import connections

        params = list(self.params)
        params[self.position] = session_id
        with connections[self.alias].cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        if not rows:
            return None
        if self.converters:
            rows = list(self.compiler.apply_converters(rows, self.converters))
        values = rows[0]
        session = UserSession.from_db(self.alias, self.session_names, [values[i] for i in self.session_cols])
        user = self.user_model.from_db(self.alias, self.user_names, [values[i] for i in self.user_cols])
        UserSession.user.field.set_cached_value(session, user)
        return session


def _lookup_api_session(session_id):
    from django.db import router

    alias = router.db_for_read(UserSession)
    lookup = _LOOKUPS.get(alias)
    if lookup is None:
        try:
            lookup = _LOOKUPS[alias] = _CompiledLookup(alias)
        except Exception:  # noqa: BLE001 - ORM internals changed: fall back to the plain query
            lookup = _LOOKUPS[alias] = False
    if lookup is False:
        # No .first(): its ORDER BY (Meta.ordering) can make MariaDB walk idx_activity.
        rows = list(
            UserSession.objects.select_related("user")
            .filter(session_id=session_id, kind=SessionKind.API).order_by()[:1]
        )
        return rows[0] if rows else None
    return lookup.fetch(session_id)


def touch(row, now=None):
    """Update last_activity at most once a minute (one UPDATE, not one per request)."""
    now = now or _now()
    if (now - row.last_activity).total_seconds() >= 60:
        UserSession.objects.filter(pk=row.pk).update(last_activity=now)
        row.last_activity = now


def refresh_tokens(refresh_token: str, request: HttpRequest | None) -> tuple[UserSession, str, str]:
    """Rotate: (new_session, access, refresh). Raises AuthFailed; reuse revokes the family."""
    parsed = tokens.parse(refresh_token, tokens.REFRESH_PREFIX)
    if parsed is None:
        raise AuthFailed
    reused_family = None
    with transaction.atomic():
        rows = list(
            UserSession.objects.select_for_update()
            .select_related("user")
            .filter(session_id=parsed[0], kind=SessionKind.API)
            .order_by()[:1]
        )
        row = rows[0] if rows else None
        if row is None or not tokens.matches(refresh_token, row.refresh_token_hash):
            raise AuthFailed
        now = _now()
        if row.rotated_at is not None:
            if _within_grace(row, now):
                raise AuthFailed
            reused_family = row.family_id
        elif (
            not row.is_active or row.revoked_at is not None or row.expires_at <= now
            or not row.user.is_active
        ):
            raise AuthFailed
        else:
            row.is_active = False
            row.rotated_at = now
            row.save(update_fields=["is_active", "rotated_at"])
            return issue_tokens(
                row.user, request, row.device_type, row.device_id, family_id=row.family_id
            )
    revoke_family(reused_family, reason="refresh_reuse")
    raise AuthFailed


def _within_grace(row, now):
    grace = int(getattr(settings, "ACCESS_REFRESH_GRACE_SECONDS", 5))
    if (now - row.rotated_at).total_seconds() > grace:
        return False
    newest = UserSession.objects.filter(family_id=row.family_id).order_by("-id").values("id", "is_active").first()
    older = (
        UserSession.objects.filter(family_id=row.family_id, id__lt=newest["id"])
        .order_by("-id").values_list("id", flat=True).first()
        if newest else None
    )
    return bool(newest and newest["is_active"] and older == row.id)


def revoke_family(family_id: str, reason: str = "revoked") -> int:
    now = _now()
    rows = UserSession.objects.filter(family_id=family_id, revoked_at__isnull=True)
    sids = list(rows.values_list("session_id", flat=True))
    count = rows.update(is_active=False, revoked_at=now, revoke_reason=reason[:50])
    _forget_browser(sids)
    return count


def revoke(session: UserSession, reason: str = "revoked") -> int:
    """End a session (API: its whole token family, so that its refresh token dies too)."""
    if session.kind == SessionKind.API:
        return revoke_family(session.family_id, reason)
    now = _now()
    count = UserSession.objects.filter(pk=session.pk, revoked_at__isnull=True).update(
        is_active=False, revoked_at=now, revoke_reason=reason[:50]
    )
    _forget_browser([session.session_id])
    return count


def revoke_all_for_user(user: User, reason: str = "revoked",
                        except_session: UserSession | None = None) -> int:
    rows = UserSession.objects.filter(user=user, revoked_at__isnull=True, is_active=True)
    if except_session is not None:
        rows = rows.exclude(family_id=except_session.family_id)
    sids = list(rows.values_list("session_id", flat=True))
    count = rows.update(is_active=False, revoked_at=_now(), revoke_reason=reason[:50])
    _forget_browser(sids)
    return count


def sessions_of(user):
    """Current sessions of a user: active, unexpired, newest activity first."""
    return UserSession.objects.filter(
        user=user, is_active=True, revoked_at__isnull=True, expires_at__gt=_now()
    ).order_by("-last_activity")


# --- Browser sessions ------------------------------------------------------------------------


def _browser_cache_key(session_id):
    return f"acl:browser:{session_id}"


def _forget_browser(session_ids):
    if session_ids:
        cache.delete_many([_browser_cache_key(s) for s in session_ids])


def start_browser_session(request: HttpRequest, user: User) -> UserSession:
    """Record a browser login as a session row; the Django session remembers its id."""
    now = _now()
    age = int(getattr(settings, "SESSION_COOKIE_AGE", 1209600))
    row = _session_row(user, request, SessionKind.BROWSER, expires_at=now + timedelta(seconds=age))
    # Browser rows carry no usable tokens: random digests keep the design's NOT NULL UNIQUE.
    row.access_token_hash = tokens.digest(tokens.new_secret())
    row.refresh_token_hash = tokens.digest(tokens.new_secret())
    row.save(force_insert=True)
    request.session[BROWSER_SESSION_KEY] = row.session_id
    cache.set(_browser_cache_key(row.session_id), 1, 60)
    return row


def browser_session_valid(request: HttpRequest) -> bool:
    """False when the browser session's row was revoked or expired. Checked once a minute
    per session through the cache; revocation clears that cache entry at once."""
    sid = request.session.get(BROWSER_SESSION_KEY)
    if not sid:
        return True
    key = _browser_cache_key(sid)
    if cache.get(key):
        return True
    rows = list(UserSession.objects.filter(session_id=sid, kind=SessionKind.BROWSER).order_by()[:1])
    row = rows[0] if rows else None
    now = _now()
    if row is None or not row.is_usable or row.user_id != request.user.pk:
        return False
    touch(row, now)
    cache.set(key, 1, 60)
    return True


def end_browser_session(request: HttpRequest) -> None:
    sid = request.session.get(BROWSER_SESSION_KEY) if hasattr(request, "session") else None
    if sid:
        UserSession.objects.filter(session_id=sid, revoked_at__isnull=True).update(
            is_active=False, revoked_at=_now(), revoke_reason="logout"
        )
        _forget_browser([sid])
