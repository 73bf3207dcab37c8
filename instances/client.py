"""HTTP client for the instance protocol v1 (see ``docs/instance-protocol.md``).

One :class:`InstanceClient` talks to one instance's command API::

    client = InstanceClient.for_instance(instance)          # from a WeworkInstance row
    client = InstanceClient("http://10.0.0.5:8601", token="...", proxy_host="proxy", proxy_port=3128)
    with client:
        client.health()
        page = client.list_contacts(account_id, limit=500)
        client.send_message(account_id, client_msg_id=str(message_uuid), conversation_id="wxid_x",
                            conversation_type="single", type="text", content={"text": "hi"})

Behaviour:

* Every call returns the response's ``data`` (a dict), or a :class:`Page` for paged lists,
  validated against the command's schema in :mod:`instances.protocol`.
* Every failure raises an :class:`instances.exceptions.InstanceError` subclass carrying the
  protocol code; httpx exceptions never escape.
* Retries with exponential back-off and jitter happen for **idempotent** commands only
  (``Command.idempotent``): all GETs, ``PUT /v1/config``, ``DELETE /v1/logins/{id}`` and
  ``send_message`` -- a send is idempotent because the instance deduplicates on
  ``client_msg_id``, so repeating it after a timeout cannot send twice. Retried failures:
  connection failures, timeouts, 5xx/``internal``, and for GETs a 429 whose ``retry_after_s``
  is at most ``max_retry_after_s``. A 429 on a send is raised at once (the caller reschedules),
  and ``risk_control`` is never retried.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from instances import binding, protocol
from instances.exceptions import (
    InstanceAuthError,
    InstanceError,
    InstanceInternalError,
    InstanceTimeout,
    InstanceUnreachable,
    InvalidRequest,
    InvalidResponse,
    ProtocolVersionMismatch,
    RateLimited,
    exception_for,
)
from instances.protocol import COMMANDS, ErrorCode
from instances.transport import StdlibHTTP, retry_after_header

logger = logging.getLogger("instances.client")

#: ``instance_configs.config_key`` values the client reads (both stored encrypted).
CONFIG_API_TOKEN = "api_token"
CONFIG_WEBHOOK_SECRET = "webhook_secret"
#: Optional plain config keys: request timeout and connect timeout in seconds.
CONFIG_TIMEOUT_S = "request_timeout_s"
CONFIG_CONNECT_TIMEOUT_S = "connect_timeout_s"

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_CONNECT_TIMEOUT_S = 3.0
DEFAULT_MAX_RETRIES = 3
USER_AGENT = f"wework-platform/instance-client protocol/{protocol.PROTOCOL_REVISION}"


@dataclass(frozen=True)
class Page:
    """One page of a paged list; ``next_cursor`` is None on the last page."""

    items: list
    next_cursor: str | None

    @property
    def is_last(self):
        return self.next_cursor is None


def build_proxy_url(host, port, username=None, password=None, scheme="http"):
    """httpx proxy URL for the instance's proxy, credentials URL-quoted; None without a host."""
    if not host:
        return None
    host = str(host).strip()
    if "://" in host:  # tolerate a scheme typed into the host field
        scheme, host = host.split("://", 1)
    if port in (None, ""):
        raise InvalidRequest("proxy_port is required when proxy_host is set")
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise InvalidRequest(f"proxy_port is not a number: {port!r}") from None
    if not 1 <= port <= 65535:
        raise InvalidRequest(f"proxy_port out of range: {port}")
    auth = ""
    if username:
        auth = quote(str(username), safe="")
        if password:
            auth += ":" + quote(str(password), safe="")
        auth += "@"
    return f"{scheme}://{auth}{host}:{port}"


def instance_credentials(instance):
    """Read the instance's API token, webhook secret and timeouts from ``instance_configs``.

    Returns a dict with the keys ``api_token``, ``webhook_secret``, ``request_timeout_s``,
    ``connect_timeout_s`` (absent ones None). Rows with ``is_encrypted`` hold a Fernet token
    made with ``wework.db.fields.field_cipher()`` and are decrypted here. Kept as a small
    module-level function so the config owner can adjust how configs are stored without
    touching the client.
    """
    wanted = (CONFIG_API_TOKEN, CONFIG_WEBHOOK_SECRET, CONFIG_TIMEOUT_S, CONFIG_CONNECT_TIMEOUT_S)
    found = dict.fromkeys(wanted)
    from instances.models import InstanceConfig  # here: keeps this module Django-free
    from wework.db.fields import field_cipher

    rows = InstanceConfig.objects.filter(instance=instance,
                                         config_key__in=(*wanted, binding.BINDING_KEY))
    bound = None
    for row in rows:
        value = row.config_value
        if row.config_key == binding.BINDING_KEY:
            bound = value
            continue
        if value and row.is_encrypted:
            value = field_cipher().decrypt(value.encode("ascii")).decode("utf-8")
        found[row.config_key] = value
    if (found[CONFIG_API_TOKEN] or found[CONFIG_WEBHOOK_SECRET]) and not binding.is_bound(instance, bound):
        # The secrets were given for another address (instances.binding): none leaves.
        logger.warning("instance %s: its secrets are not bound to its address; withheld",
                       getattr(instance, "pk", None))
        found[CONFIG_API_TOKEN] = found[CONFIG_WEBHOOK_SECRET] = None
    return found


def _float_or(value, default):
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


class InstanceClient:
    """Client of one instance's command API (protocol v1). Thread-safe like ``httpx.Client``."""

    def __init__(
        self,
        api_url,
        token=None,
        *,
        timeout=DEFAULT_TIMEOUT_S,
        connect_timeout=DEFAULT_CONNECT_TIMEOUT_S,
        proxy=None,
        proxy_host=None,
        proxy_port=None,
        proxy_username=None,
        proxy_password=None,
        proxy_scheme="http",
        max_retries=DEFAULT_MAX_RETRIES,
        backoff_base_s=0.25,
        backoff_max_s=4.0,
        max_retry_after_s=5.0,
        validate_responses=True,
        transport=None,
        sleep=time.sleep,
        label=None,
        stdlib_http=False,
    ):
        """
        :param api_url: base URL of the instance, e.g. ``http://10.0.0.5:8601`` (no ``/v1``).
        :param token: bearer token of the instance (``instance_configs.api_token``).
        :param timeout: seconds for reading/writing one response; ``connect_timeout`` for connecting.
        :param proxy: a full proxy URL, or build one from ``proxy_host``/``proxy_port``/
            ``proxy_username``/``proxy_password`` (the instance's proxy columns).
        :param max_retries: extra attempts for idempotent commands (0 disables retries).
        :param backoff_base_s: first back-off; doubles each attempt, capped at ``backoff_max_s``,
            with jitter (a random 50-100 % of the value).
        :param max_retry_after_s: GETs answered 429 are retried only if the instance asks to
            wait at most this long.
        :param validate_responses: check every response against the protocol schema and raise
            :class:`InvalidResponse` on a mismatch.
        :param transport: an httpx transport (tests); ``sleep`` is injectable for the same reason.
        :param label: name used in log lines (e.g. the instance's name).
        :param stdlib_http: send through the standard library's ``http.client`` (one keep-alive
            connection per thread) instead of httpx when there is no proxy and no test transport:
            about half the client CPU per request, for hot paths such as message dispatch. Errors,
            retries and response parsing are the same.
        """
        if not api_url or not str(api_url).strip():
            raise InvalidRequest("The instance has no API URL.")
        api_url = str(api_url).strip().rstrip("/")
        if not api_url.startswith(("http://", "https://")):
            raise InvalidRequest(f"The instance API URL must start with http:// or https://: {api_url!r}")
        if api_url.endswith(protocol.PATH_PREFIX):
            api_url = api_url[: -len(protocol.PATH_PREFIX)]
        self.api_url = api_url
        self.token = token or None
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.proxy_url = proxy or build_proxy_url(
            proxy_host, proxy_port, proxy_username, proxy_password, scheme=proxy_scheme
        )
        self.max_retries = max(0, int(max_retries))
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self.max_retry_after_s = float(max_retry_after_s)
        self.validate_responses = validate_responses
        self.label = label or api_url
        self._sleep = sleep
        headers = {
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            protocol.VERSION_HEADER: protocol.PROTOCOL_REVISION,
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        kwargs = {
            "base_url": self.api_url,
            "headers": headers,
            "timeout": httpx.Timeout(self.timeout, connect=self.connect_timeout),
            "follow_redirects": False,
            "trust_env": False,
        }
        if transport is not None:
            kwargs["transport"] = transport
        elif self.proxy_url:
            kwargs["proxy"] = self.proxy_url
        self._http = httpx.Client(**kwargs)
        self._stdlib = None
        if stdlib_http and transport is None and not self.proxy_url:
            self._stdlib = StdlibHTTP(self.api_url, headers, self.timeout, self.connect_timeout)

    # ------------------------------------------------------------------ construction helpers

    @classmethod
    def for_instance(cls, instance, **overrides):
        """Client for a ``WeworkInstance`` row: ``api_url``, proxy columns (password decrypted by
        ``EncryptedTextField``), token and timeouts from :func:`instance_credentials`."""
        creds = instance_credentials(instance)
        kwargs = {
            "token": creds.get(CONFIG_API_TOKEN),
            "timeout": _float_or(creds.get(CONFIG_TIMEOUT_S), DEFAULT_TIMEOUT_S),
            "connect_timeout": _float_or(creds.get(CONFIG_CONNECT_TIMEOUT_S), DEFAULT_CONNECT_TIMEOUT_S),
            "proxy_host": getattr(instance, "proxy_host", None),
            "proxy_port": getattr(instance, "proxy_port", None),
            "proxy_username": getattr(instance, "proxy_username", None),
            "proxy_password": getattr(instance, "proxy_password_encrypted", None),
            "label": getattr(instance, "name", None) or None,
        }
        kwargs.update(overrides)
        return cls(getattr(instance, "api_url", None), **kwargs)

    def close(self):
        self._http.close()
        if self._stdlib is not None:
            self._stdlib.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<InstanceClient {self.label}>"

    # ------------------------------------------------------------------ commands

    def health(self):
        """``GET /v1/health``: runtime, client_version, protocol_version, uptime_s,
        accounts [{account_id, status}], queue_depth, client_running."""
        return self._call("health")

    def capabilities(self):
        """``GET /v1/capabilities``: send_types, mentions, mention_all, recall, location,
        max_page_limit, protocol_versions."""
        return self._call("capabilities")

    def push_config(
        self,
        *,
        instance_id=None,
        webhook_url=None,
        webhook_secret=None,
        heartbeat_interval_s=None,
        proxy=None,
        rate_limits=None,
        clear_proxy=False,
        puppet_services=None,
        webhook_batch_max=None,
    ):
        """``PUT /v1/config``: set the given keys (None = unchanged). ``proxy`` is a dict
        {host, port, username?, password?, scheme?}; ``clear_proxy=True`` removes it. Returns
        {applied: [keys], config: {... secrets masked}}."""
        body = {
            k: v
            for k, v in {
                "instance_id": instance_id,
                "webhook_url": webhook_url,
                "webhook_secret": webhook_secret,
                "heartbeat_interval_s": heartbeat_interval_s,
                "proxy": proxy,
                "rate_limits": rate_limits,
                "puppet_services": puppet_services,
                "webhook_batch_max": webhook_batch_max,
            }.items()
            if v is not None
        }
        if clear_proxy:
            body["proxy"] = None
        return self._call("push_config", json=body)

    def restart(self, reason=None):
        """``POST /v1/restart`` (202): the client restarts shortly after; not retried."""
        return self._call("restart", json={"reason": reason} if reason else {})

    def start_login(self, account_id=None):
        """``POST /v1/logins``: {login_id, qrcode {content, image_url?}, expires_at_ms, status}.
        ``account_id`` re-logs a known account in. Not retried (each call makes a new login)."""
        return self._call("start_login", json={"account_id": account_id} if account_id else {})

    def get_login(self, login_id):
        """``GET /v1/logins/{login_id}``: {login_id, status, account_id, expires_at_ms}."""
        return self._call("get_login", login_id=login_id)

    def verify_login(self, login_id, code):
        """``POST /v1/logins/{login_id}/verify`` with the code asked for by ``need_verify``."""
        return self._call("verify_login", login_id=login_id, json={"code": str(code)})

    def cancel_login(self, login_id):
        """``DELETE /v1/logins/{login_id}``: cancel a pending login (idempotent)."""
        return self._call("cancel_login", login_id=login_id)

    def list_accounts(self):
        """``GET /v1/accounts``: list of {account_id, nickname, avatar, status, ...}."""
        return self._call("list_accounts")["items"]

    def logout_account(self, account_id):
        """``POST /v1/accounts/{account_id}/logout``: {account_id, status}."""
        return self._call("logout_account", account_id=account_id)

    def list_contacts(self, account_id, cursor=None, limit=protocol.DEFAULT_PAGE_LIMIT):
        """One :class:`Page` of contacts ``{contact_id, name, kind, remark, ...}``."""
        return self._page("list_contacts", cursor, limit, account_id=account_id)

    def list_rooms(self, account_id, cursor=None, limit=protocol.DEFAULT_PAGE_LIMIT):
        """One :class:`Page` of rooms ``{room_id, topic, member_count, owner_id, ...}``."""
        return self._page("list_rooms", cursor, limit, account_id=account_id)

    def list_room_members(self, account_id, room_id, cursor=None, limit=protocol.DEFAULT_PAGE_LIMIT):
        """One :class:`Page` of room members ``{member_id, name, role, room_alias, ...}``."""
        return self._page("list_room_members", cursor, limit, account_id=account_id, room_id=room_id)

    def iter_contacts(self, account_id, limit=protocol.MAX_PAGE_LIMIT) -> Iterator[Page]:
        """Pages of all contacts, following cursors."""
        return self._iter_pages(self.list_contacts, limit, account_id)

    def iter_rooms(self, account_id, limit=protocol.MAX_PAGE_LIMIT) -> Iterator[Page]:
        return self._iter_pages(self.list_rooms, limit, account_id)

    def iter_room_members(self, account_id, room_id, limit=protocol.MAX_PAGE_LIMIT) -> Iterator[Page]:
        return self._iter_pages(self.list_room_members, limit, account_id, room_id)

    def send_message(
        self,
        account_id,
        client_msg_id,
        conversation_id,
        conversation_type,
        type,  # noqa: A002 - the protocol's field name
        content,
        mentions=None,
        reply_to=None,
    ):
        """``POST /v1/accounts/{account_id}/messages`` (202): queue one message.

        Idempotent by ``client_msg_id`` (use the platform's ``message_uuid``): a repeat returns
        the first result with ``duplicate: true`` and sends nothing, which is why this call is
        retried after timeouts and 5xx. Returns {message_id, client_msg_id, status, duplicate};
        the outcome arrives later as a ``message.status`` event (or :meth:`get_message_status`).
        ``mentions`` is a list of ids or ``"all"``.
        """
        body = self.message_body(client_msg_id, conversation_id, conversation_type, type, content, mentions, reply_to)
        return self._call("send_message", account_id=account_id, json=body)

    @staticmethod
    def message_body(client_msg_id, conversation_id, conversation_type, type, content, mentions=None,  # noqa: A002
                     reply_to=None):
        """The JSON of one send, as :meth:`send_message` posts it and :meth:`send_messages` takes it."""
        body = {
            "client_msg_id": str(client_msg_id),
            "conversation_id": conversation_id,
            "conversation_type": conversation_type,
            "type": type,
            "content": content,
        }
        if mentions:
            body["mentions"] = mentions
        if reply_to:
            body["reply_to"] = reply_to
        return body

    def send_messages(self, account_id, messages):
        """``POST /v1/accounts/{account_id}/messages/batch`` (202, revision 1.1): queue up to
        ``protocol.MAX_BATCH_SEND`` messages (bodies from :meth:`message_body`) in order.

        Returns one result per message, in order: {client_msg_id, status, message_id,
        duplicate, error}. Each item is idempotent by its ``client_msg_id``, like
        :meth:`send_message`; an item refused with a ``protocol.BATCH_STOP_CODES`` code stops
        the batch (the rest are ``not_attempted``). Only for instances whose capabilities give
        ``batch_send_max`` > 0; others answer ``target_not_found`` (an unknown command).
        """
        messages = list(messages)
        invalid = protocol.first_item_errors("request", "send_message", messages)
        if invalid is not None:
            index, errors = invalid
            raise InvalidRequest(f"messages[{index}]: {'; '.join(errors[:5])}", command="send_messages",
                                 details={"errors": errors, "index": index})
        data = self._call("send_messages", account_id=account_id, json={"messages": messages})
        results = data.get("results")
        if not isinstance(results, list) or len(results) != len(messages):
            raise InvalidResponse(
                f"A batch of {len(messages)} messages was answered with "
                f"{len(results) if isinstance(results, list) else 'no'} results.",
                command="send_messages",
            )
        return results

    def get_message_status(self, account_id, message_id):
        """``GET /v1/accounts/{account_id}/messages/{id}`` where id is the message_id or the
        client_msg_id: {message_id, client_msg_id, status, error, sent_at_ms}."""
        return self._call("get_message_status", account_id=account_id, message_id=message_id)

    def events_after(self, after_seq, limit=protocol.DEFAULT_EVENTS_LIMIT):
        """``GET /v1/events?after_seq=N``: {events: [envelope...], last_seq, has_more}, for
        replaying a gap in the sequence."""
        return self._call("events_after", params={"after_seq": int(after_seq), "limit": int(limit)})

    # ------------------------------------------------------------------ internals

    def _page(self, name, cursor, limit, **path):
        try:
            limit = int(limit)
        except (TypeError, ValueError):
            raise InvalidRequest(f"limit must be an integer: {limit!r}", command=name) from None
        if not 1 <= limit <= protocol.MAX_PAGE_LIMIT:
            raise InvalidRequest(f"limit must be between 1 and {protocol.MAX_PAGE_LIMIT}", command=name)
        params = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        data = self._call(name, params=params, **path)
        return Page(items=data["items"], next_cursor=data["next_cursor"])

    @staticmethod
    def _iter_pages(fetch, limit, *args):
        cursor = None
        seen = set()
        while True:
            page = fetch(*args, cursor=cursor, limit=limit)
            yield page
            if page.next_cursor is None:
                return
            if page.next_cursor in seen:
                raise InvalidResponse("The instance returned the same cursor twice.")
            seen.add(page.next_cursor)
            cursor = page.next_cursor

    def _backoff(self, attempt, retry_after_s=None):
        delay = min(self.backoff_max_s, self.backoff_base_s * (2**attempt))
        delay *= random.uniform(0.5, 1.0)
        if retry_after_s:
            delay = max(delay, float(retry_after_s))
        return delay

    def _should_retry(self, command, exc, attempt):
        if not command.idempotent or attempt >= self.max_retries or not exc.transient:
            return False
        if isinstance(exc, RateLimited):
            return command.method == "GET" and (exc.retry_after_s or 0) <= self.max_retry_after_s
        return True

    def _call(self, name, *, json=None, params=None, **path):
        command = COMMANDS[name]
        missing = [p for p in command.path_params if not path.get(p)]
        if missing:
            raise InvalidRequest(f"Missing {', '.join(missing)}.", command=name)
        if command.request is not None and json is not None:
            errors = protocol.schema_errors("request", name, json)
            if errors:
                raise InvalidRequest("; ".join(errors[:5]), command=name, details={"errors": errors})
        url = command.url_path(**path)
        attempt = 0
        while True:
            try:
                return self._once(command, url, json, params)
            except InstanceError as exc:
                exc.command = exc.command or name
                if not self._should_retry(command, exc, attempt):
                    raise
                delay = self._backoff(attempt, exc.retry_after_s)
                logger.warning(
                    "instance %s: %s failed (%s), retry %d/%d in %.2fs",
                    self.label,
                    name,
                    exc.code,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                self._sleep(delay)
                attempt += 1

    def _once(self, command, url, json, params):
        if self._stdlib is not None:
            return self._parse(command, self._stdlib.request(command.method, url, json, params, command.idempotent))
        try:
            response = self._http.request(command.method, url, json=json, params=params)
        except httpx.ConnectTimeout:
            raise InstanceUnreachable(
                f"Could not connect to {self.api_url} within {self.connect_timeout:g}s."
            ) from None
        except httpx.TimeoutException:
            raise InstanceTimeout(f"{self.api_url} did not answer within {self.timeout:g}s.") from None
        except httpx.ProxyError as exc:
            raise InstanceUnreachable(f"Proxy error reaching {self.api_url}: {exc}") from None
        except httpx.TransportError as exc:
            raise InstanceUnreachable(f"Could not reach {self.api_url}: {exc or type(exc).__name__}") from None
        except httpx.HTTPError as exc:  # pragma: no cover - defensive: any other httpx failure
            raise InstanceUnreachable(f"HTTP error talking to {self.api_url}: {exc}") from None
        return self._parse(command, response)

    def _parse(self, command, response):
        status = response.status_code
        version = response.headers.get(protocol.VERSION_HEADER)
        if version and version.split(".", 1)[0] != protocol.PROTOCOL_VERSION:
            raise ProtocolVersionMismatch(
                f"The instance speaks protocol {version}, this platform speaks {protocol.PROTOCOL_REVISION}.",
                status=status,
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "ok" not in body:
            raise self._error_without_envelope(response)
        if not body.get("ok"):
            error = body.get("error") if isinstance(body.get("error"), dict) else {}
            code = error.get("code") or self._error_without_envelope(response).code
            retry_after = error.get("retry_after_s")
            if retry_after is None and code == ErrorCode.RATE_LIMITED:
                retry_after = retry_after_header(response)
            raise exception_for(
                code,
                str(error.get("message") or f"HTTP {status}"),
                status=status,
                retry_after_s=retry_after,
            )
        if status >= 300:
            raise InvalidResponse(f"ok=true with HTTP {status}.", status=status)
        data = body.get("data")
        if data is None:
            data = {}
        if self.validate_responses:
            errors = protocol.schema_errors("response", command.name, data)
            if errors:
                raise InvalidResponse(
                    "Response does not follow the protocol: " + "; ".join(errors[:5]),
                    status=status,
                    details={"errors": errors},
                )
        return data

    @classmethod
    def _error_without_envelope(cls, response):
        exc = cls._classify_without_envelope(response)
        exc.without_envelope = True  # users read the transport sentence (exceptions.is_transport)
        return exc

    @staticmethod
    def _classify_without_envelope(response):
        status = response.status_code
        text = f"HTTP {status} without a protocol envelope"
        if status in (401, 403):
            return InstanceAuthError(f"The instance refused the token (HTTP {status}).", status=status)
        if status == 429:
            return RateLimited(text, status=status, retry_after_s=retry_after_header(response))
        if status >= 500:
            return InstanceInternalError(text, status=status)
        if status == 408:
            return InstanceTimeout(text, status=status)
        return InvalidResponse(text, status=status)
