"""Server-rendered pages: compose, task list, task detail with a live progress bar, template
preview. Thin: every decision is in the services (which also check the send and manage
permissions); the pages check who may see them and show the services' refusals."""
from functools import wraps

from django.contrib import admin, messages as flash
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _, gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from accounts.services.otp import requires_two_factor
from contacts.models import Contact, Group, GroupMember, WeworkAccount
from wework import shards

from . import content as content_mod, pacing, permissions, rendering
from .errors import MessagingInvalid, SendPermissionDenied, error_messages
from .forms import CONTENT_FIELDS, TYPE_FIELDS, ComposeForm, PreviewForm
from .models import MessageTask, TaskStatus
from .services import counters, lifecycle, receivers, sending, templates

CHOICES_LIMIT = 500  # contacts/groups listed for picking; larger audiences use the filters


def page(view):
    """Logged in (and verified when two factors are required), else the admin login."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if requires_two_factor(user) and not user.is_verified():
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        return view(request, *args, **kwargs)

    return wrapped


def _ctx(request, **extra):
    ctx = admin.site.each_context(request)
    ctx.update(extra)
    return ctx


def _visible_task(request, pk):
    qs = permissions.scope(MessageTask.objects.select_related("account", "template"), request.user,
                           permissions.VIEW_TASK, permissions.MANAGE_TASK)
    task = qs.filter(pk=pk).first()
    if task is None:
        raise Http404
    return task


@page
def task_list(request):
    if not permissions.may_use(request.user, permissions.VIEW_TASK):
        raise PermissionDenied
    qs = permissions.scope(MessageTask.objects.select_related("account").order_by("-id"), request.user,
                           permissions.VIEW_TASK)
    status = request.GET.get("status")
    if status and status.isdigit():
        qs = qs.filter(status=int(status))
    page_obj = Paginator(qs, 50).get_page(request.GET.get("page"))
    return render(request, "messaging/task_list.html", _ctx(
        request, title=_("Message tasks"), page_obj=page_obj, statuses=TaskStatus.choices, status=status,
        can_compose=permissions.may_compose(request.user),
    ))


@page
def task_detail(request, pk):
    task = _visible_task(request, pk)
    failed = receivers.failed_receivers(task)[:200]
    can_manage = permissions.may(request.user, permissions.MANAGE_TASK,
                                 task.account.instance_id if task.account_id else None)
    # Sending stopped for the account after a risk-control signal: "Resume" alone is refused
    # until the stop is cleared, so a paused task offers "Clear the stop and resume" as well.
    account_stopped = None
    if can_manage and task.status == TaskStatus.PAUSED and task.account_id:
        account_stopped = pacing.blocked_reason(task.account_id)
    progress = counters.task_progress(task)
    total = progress["target_count"] or 1
    bar = {key: round(100 * progress[field] / total, 2) for key, field in
           (("ok", "success_count"), ("fail", "fail_count"), ("sending", "sending"), ("skipped", "skipped"))}
    return render(request, "messaging/task_detail.html", _ctx(
        request, title=task.task_name or _("Task %(id)s") % {"id": task.pk}, task=task, failed=failed,
        progress=progress, bar=bar, can_manage=can_manage, account_stopped=account_stopped,
        progress_url=reverse("messaging:task_progress", args=[task.pk]),
    ))


@page
def task_progress(request, pk):
    return JsonResponse(counters.task_progress(_visible_task(request, pk)))


ACTIONS = {
    "pause": (lifecycle.pause_task, gettext_lazy("The task is paused.")),
    "resume": (lifecycle.resume_task, gettext_lazy("The task is resumed.")),
    "cancel": (lifecycle.cancel_task, gettext_lazy("The task is cancelled.")),
    "resend": (lifecycle.resend_failed, gettext_lazy("Failed receivers are queued again.")),
}


@page
@require_POST
def task_action(request, pk, action):
    task = _visible_task(request, pk)
    if action not in ACTIONS:
        raise Http404
    fn, done = ACTIONS[action]
    kwargs = {"clear_stop": True} if action == "resume" and request.POST.get("clear_stop") == "1" else {}
    try:
        fn(request.user, task, **kwargs)
        flash.success(request, done)
    except SendPermissionDenied as exc:
        raise PermissionDenied(exc.message) from exc
    except MessagingInvalid as exc:
        flash.error(request, " ".join(error_messages(exc)))
    return redirect("messaging:task_detail", pk=task.pk)


def _account_choices(request):
    send = permissions.accounts_for(request.user, permissions.SEND_MESSAGE)
    broadcast = permissions.accounts_for(request.user, permissions.SEND_BROADCAST)
    ids = set(send.values_list("pk", flat=True)) | set(broadcast.values_list("pk", flat=True))
    return list(WeworkAccount.objects.select_related("instance").filter(pk__in=ids).order_by("nickname", "wxid"))


def _receiver_choices(account, search=""):
    if account is None:
        return [], []
    cqs = shards.for_instance(Contact, account.instance_id).filter(account_id=account.pk, is_blocked=False)
    gqs = shards.for_instance(Group, account.instance_id).filter(account_id=account.pk)
    if search:
        cqs = cqs.filter(Q(nickname__icontains=search) | Q(remark__icontains=search) | Q(wxid=search))
        gqs = gqs.filter(group_name__icontains=search)
    contacts = [(w, f"{r or n or w} ({w})") for w, n, r in
                cqs.order_by("nickname").values_list("wxid", "nickname", "remark")[:CHOICES_LIMIT]]
    groups = [(w, f"{n or w} ({w})") for w, n in
              gqs.order_by("group_name").values_list("group_wxid", "group_name")[:CHOICES_LIMIT]]
    return contacts, groups


@page
def compose(request):
    accounts = _account_choices(request)
    if not accounts and not permissions.may_compose(request.user):
        raise PermissionDenied
    by_id = {str(a.pk): a for a in accounts}
    only = str(accounts[0].pk) if len(accounts) == 1 else ""
    account_id = request.POST.get("account") or request.GET.get("account") or only
    account = by_id.get(account_id)
    search = request.GET.get("q", "").strip()
    contacts, groups = _receiver_choices(account, search)
    if request.method == "POST":
        form = ComposeForm(request.POST, accounts=accounts, contacts=contacts, groups=groups)
        if (form.is_valid() and account is not None and not form.is_single()
                and request.POST.get("confirmed") != "1"):
            # A broadcast is shown (audience, the message as its first receivers read it) and
            # confirmed before it goes out; one message to one receiver is sent at once.
            preview = _preview(request, form, account)
            if preview is not None:
                return render(request, "messaging/compose_confirm.html", _ctx(
                    request, title=_("Confirm the broadcast"), preview=preview,
                    sender=account.nickname or account.wxid,
                    posted=[(k, v) for k in request.POST if k != "csrfmiddlewaretoken"
                            for v in request.POST.getlist(k)],
                ))
        if form.is_valid() and account is not None:
            task = _submit(request, form, account)
            if task is not None:
                done = (ngettext("Sent to %(n)d receiver: follow the progress below.",
                                 "Sent to %(n)d receivers: follow the progress below.",
                                 task.target_count) % {"n": task.target_count}
                        if task.scheduled_time is None else _("Scheduled."))
                flash.success(request, done)
                return redirect("messaging:task_detail", pk=task.pk)
    else:
        form = ComposeForm(initial=_compose_initial(request, account_id), accounts=accounts, contacts=contacts,
                           groups=groups)
    return render(request, "messaging/compose.html", _ctx(
        request, title=_("Send a message"), form=form, account=account, search=search,
        template_data=_template_data(form),
        members_url=reverse("messaging:compose_members"),
        type_fields=TYPE_FIELDS, content_fields=CONTENT_FIELDS, choices_limit=CHOICES_LIMIT,
        truncated=len(contacts) >= CHOICES_LIMIT or len(groups) >= CHOICES_LIMIT,
    ))


@page
def group_members(request):
    """The members of one group chat of an account the user may send from, for the compose
    page's @ picker: {"group", "members": [{"wxid", "name"}], "truncated"}. The account itself
    is left out (it cannot @ itself)."""
    account = {str(a.pk): a for a in _account_choices(request)}.get(request.GET.get("account", ""))
    group_wxid = request.GET.get("group", "")
    if account is None or not group_wxid:
        raise Http404
    group = shards.for_instance(Group, account.instance_id).filter(
        account_id=account.pk, group_wxid=group_wxid).first()
    if group is None:
        raise Http404
    rows = list(shards.for_instance(GroupMember, account.instance_id).filter(group_id=group.pk)
                .exclude(member_wxid=account.wxid).order_by("member_nickname", "member_wxid")
                .values_list("member_wxid", "member_nickname", "group_nickname")[:CHOICES_LIMIT + 1])
    return JsonResponse({
        "group": group.group_name or group.group_wxid,
        "members": [{"wxid": w, "name": g or n or w} for w, n, g in rows[:CHOICES_LIMIT]],
        "truncated": len(rows) > CHOICES_LIMIT,
    })


def _template_data(form):
    """What the compose page shows when a template is picked: its text (placeholders as
    written) and its declared variables, one input each ({pk: {...}}, for the page's script)."""
    data = {}
    for template in form.fields["template"].queryset[:CHOICES_LIMIT]:
        try:
            declarations = rendering.normalize_declarations(template.variables)
            text = template.content if template.message_type == "text" else content_mod.summary(
                template.message_type, content_mod.parse_content(template.message_type, template.content))
        except MessagingInvalid:  # saved before today's checks: picked, it is refused with a reason
            declarations, text = [], ""
        data[str(template.pk)] = {
            "type": str(template.get_message_type_display()), "text": text,
            "variables": [{"name": d["name"], "label": d["label"] or d["name"], "required": bool(d["required"]),
                           "default": "" if d["default"] is None else str(d["default"])}
                          for d in declarations if d["name"] not in rendering.BUILTIN_VARIABLES],
        }
    return data


def _compose_initial(request, account_id):
    """The form as a link opens it: "Reply" on a received message names the message
    (`reply_to`), its conversation (`contacts` or `groups`) and its account."""
    initial = {"account": account_id}
    reply_to = request.GET.get("reply_to", "")
    if reply_to.isdigit():
        initial["reply_to"] = int(reply_to)
    for key in ("contacts", "groups"):
        picked = [value for value in request.GET.getlist(key) if value]
        if picked:
            initial[key] = picked
    return initial


def _preview(request, form, account):
    """The task's preview; None (the refusal on the form) when the service refuses."""
    try:
        return sending.preview_task(request.user, form.task_request(account))
    except SendPermissionDenied as exc:
        form.add_error(None, exc.message)
    except MessagingInvalid as exc:
        form.add_request_errors(exc)
    return None


def _submit(request, form, account):
    """Create the task the form asks for; None (the refusal on the form) when the service refuses."""
    try:
        return sending.create_task(request.user, form.task_request(account))
    except SendPermissionDenied as exc:
        form.add_error(None, exc.message)
    except MessagingInvalid as exc:
        form.add_request_errors(exc)
    return None


@page
def template_preview(request, pk):
    previewable = permissions.previewable_templates(request.user)  # the same rule as compose
    if previewable is None:
        raise PermissionDenied
    template = previewable.filter(pk=pk).first()
    if template is None:
        raise Http404
    form = PreviewForm(request.GET or None)
    values = form.cleaned_data["values"] if form.is_bound and form.is_valid() else {}
    try:
        preview = templates.preview_template(template, values)
        error = None
    except MessagingInvalid as exc:
        preview, error = None, " ".join(error_messages(exc))
    return render(request, "messaging/template_preview.html", _ctx(
        request, title=_("Preview: %(name)s") % {"name": template.name}, template=template, form=form,
        preview=preview, error=error,
    ))
