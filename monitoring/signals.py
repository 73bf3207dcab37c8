"""Signal receivers: the audit actor for Celery tasks (who queued it travels in the headers)."""
import logging

from celery.signals import after_setup_logger, before_task_publish, task_postrun, task_prerun

from . import context

logger = logging.getLogger(__name__)

HEADER_USER = "wework_actor_user_id"
HEADER_REQUEST = "wework_request_id"
_tokens = {}


@before_task_publish.connect(dispatch_uid="monitoring.task_actor_headers")
def _add_actor_headers(sender=None, headers=None, **kwargs):
    actor = context.current()
    if actor is None or headers is None:
        return
    try:
        user_id = actor.user_id
    except Exception:  # noqa: BLE001
        user_id = None
    headers[HEADER_USER] = user_id
    headers[HEADER_REQUEST] = actor.request_id


@task_prerun.connect(dispatch_uid="monitoring.task_actor")
def _task_actor(task_id=None, task=None, **kwargs):
    request = getattr(task, "request", None)
    user_id = getattr(request, HEADER_USER, None) if request is not None else None
    parent_request = getattr(request, HEADER_REQUEST, None) if request is not None else None
    headers = getattr(request, "headers", None) or {}
    user_id = user_id or headers.get(HEADER_USER)
    parent_request = parent_request or headers.get(HEADER_REQUEST)
    user = None
    if user_id:
        from django.contrib.auth import get_user_model

        user = get_user_model().all_objects.filter(pk=user_id).first()
    parent = context.current()
    if parent is not None and not user_id and not parent_request:
        # Eager execution (tests, development) runs inside the caller's context: keep its
        # user and request id, since no headers were published.
        try:
            user = parent.resolved_user()
        except Exception:  # noqa: BLE001
            user = None
        parent_request = parent.request_id
    actor = context.Actor(
        source="task", user=user, request_id=(parent_request or task_id),
        span_id=context.new_span_id(), request_method="TASK",
        request_url=(getattr(task, "name", None) or "")[:1000],
    )
    _tokens[task_id] = context.set_actor(actor)


@task_postrun.connect(dispatch_uid="monitoring.task_actor_reset")
def _task_actor_reset(task_id=None, **kwargs):
    token = _tokens.pop(task_id, None)
    if token is not None:
        try:
            context.reset_actor(token)
        except ValueError:  # set in another context (eager nesting): leave it
            pass


@after_setup_logger.connect(dispatch_uid="monitoring.keep_system_log_handler")
def _keep_system_log_handler(logger=None, **kwargs):
    """Celery's worker replaces the root logger's handlers: put the system log handler back."""
    from .logging_handler import handlers

    if logger is None:
        return
    for handler in handlers():
        if handler not in logger.handlers:
            logger.addHandler(handler)
