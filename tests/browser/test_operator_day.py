"""An operator's day in a real browser (Debian's chromium through Playwright), in Chinese and in
English: log in with a one-time code, read the dashboard, log a new account in by QR code, sync
it, send every message type, run a broadcast through pause, resume and cancel, see an alert
raised by the instance and cleared by the operator's restart, and a user granted one instance
who sees only that instance. The platform is a live server with a real Celery worker; the
instances are two simulators.

Every text the test looks for comes from the platform's catalogue in the page's language
(`t()`), so a sentence left untranslated fails the Chinese run."""
import re
import time

import httpx
import pytest
from django.utils import translation

from accounts.models import Role
from accounts.services import otp as otp_services, permissions as perm_services
from contacts import services as contact_services
from contacts.models import Contact, Group, WeworkAccount
from instances import services as instance_services
from instances.models import InstanceStatus
from messaging.models import Message, MessageTask, ReceiverSendStatus, TaskStatus
from messaging.services import templates
from monitoring.models import AlertRecord
from simulator.server import Simulator
from wework import shards
from wework.testing.fixtures import totp_code

from .conftest import WORKER_MESSAGING, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LOCALES = {"zh-hans": "zh-CN", "en": "en-US"}
PASSWORD = "Browser-walk-2026!"
TOKEN = "browser-sim-token"
TYPES = {  # each message type as the compose page asks for it
    "text": {"text": "Hello {{ receiver_name }}"},
    "image": {"url": "https://example.com/a.png"},
    "video": {"url": "https://example.com/a.mp4", "thumb_url": "https://example.com/a.jpg", "duration_s": "12"},
    "file": {"url": "https://example.com/a.pdf", "filename": "a.pdf", "size": "1024"},
    "link": {"title": "Offer", "url": "https://example.com/offer", "desc": "This week only"},
    "card": {"contact_id": None},  # another contact of the account
    "location": {"latitude": "31.23", "longitude": "121.47", "title": "Office", "address": "Shanghai"},
}


class Walk:
    """The browser page of one person, and the platform's sentences in its language."""

    def __init__(self, page, base_url, lang):
        self.page, self.base, self.lang = page, base_url, lang

    def t(self, message, plural=None, n=None, **values):
        """The platform's sentence in this page's language (a lazy label, or an msgid with its
        plural and values)."""
        with translation.override(self.lang):
            if not isinstance(message, str):
                return str(message)
            text = translation.ngettext(message, plural, n) if plural else translation.gettext(message)
        if self.lang != "en":
            assert text not in (message, plural), f"not translated into {self.lang}: {message!r}"
        if n is not None:
            values["n"] = n
        return text % values if values else text

    def go(self, path):
        response = self.page.goto(self.base + path)
        assert response is not None and response.status < 400, f"{path}: HTTP {response and response.status}"
        return response

    def text(self, selector="body"):
        return self.page.inner_text(selector)

    def see(self, *texts, selector="body"):
        body = self.text(selector)
        for text in texts:
            assert str(text) in body, f"{text!r} not on {self.page.url}"

    def flash(self):
        return self.text("ul.messagelist") if self.page.locator("ul.messagelist").count() else ""

    def login(self, user, device):
        self.page.goto(self.base + "/admin/")
        assert "/admin/login/" in self.page.url
        self.page.fill("#id_username", user.username)
        self.page.fill("#id_password", PASSWORD)
        self.page.fill("#id_otp_token", totp_code(device))
        self.page.click("#login-form [type=submit]")
        self.page.wait_for_selector("#dashboard")

    def run_action(self, changelist, pk, action):
        self.go(changelist)
        self.page.check(f"input.action-select[value='{pk}']")
        self.page.select_option("select[name=action]", action)
        self.page.click("button[name=index]")
        self.page.wait_for_load_state()


def _person(username, **extra):
    from accounts.models import User

    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, **extra)
    return user, otp_services.create_confirmed_totp(user)


def _instance(name, sim, admin):
    registration = instance_services.register_instance(
        name=name, api_url=sim.url, token=TOKEN, max_accounts=5, heartbeat_interval=2, created_by=admin)
    assert registration.pushed, registration.push_error
    return registration.instance


@pytest.fixture
def world(live_server, celery_worker, settings, drop_shards):
    """Two simulators registered as instances `north` (one account online, 14 contacts) and
    `south` (a small one); an operator (super administrator) and a user granted `south` only,
    both with an authenticator."""
    settings.PLATFORM_BASE_URL = live_server.url
    settings.MESSAGING = dict(WORKER_MESSAGING)
    perm_services.sync_permissions()
    perm_services.seed_roles()
    sims = []
    for contacts, rooms in ((14, 2), (3, 1)):
        sim = Simulator(port=0, token=TOKEN, accounts=1, contacts=contacts, rooms=rooms, members=4,
                        seed=5 + contacts, chatter_per_min=0, history_on_login=0, heartbeat_interval_s=2,
                        duplicate_rate=0.0, retry_base_s=0.2, retry_max_s=1.0, send_delay_ms=20)
        sim.start()
        sims.append(sim)
    try:
        operator, operator_device = _person("operator", is_superuser=True)
        north = _instance("north", sims[0], operator)
        south = _instance("south", sims[1], operator)
        scoped, scoped_device = _person("scoped")
        perm_services.grant_instance(scoped, south, Role.objects.get(name="operator"))
        template = templates.save_template(operator, {
            "name": "Offer", "message_type": "text", "content": "{{ offer }} for {{ receiver_name }}",
            "variables": [{"name": "offer", "label": "Offer"}]})
        yield {"operator": (operator, operator_device), "scoped": (scoped, scoped_device), "template": template,
               "north": north, "south": south, "sims": sims, "url": live_server.url}
    finally:
        for sim in sims:
            sim.stop()


@pytest.fixture
def drop_shards():
    """The live server's flush at the end runs before the shard cleanup of conftest: shard rows
    would break its foreign keys, so the shards go first."""
    yield
    from wework.shards.testing import drop_shard_tables

    drop_shard_tables()


def _online(instance):
    instance.refresh_from_db()
    return instance.status == InstanceStatus.ONLINE


def _synced(account):
    run = contact_services.sync_run(account)
    return run is not None and run["status"] == "done"


@pytest.mark.parametrize("lang", sorted(LOCALES))
def test_operator_day(world, new_page, lang):
    started = time.monotonic()
    north, south = world["north"], world["south"]
    sim = world["sims"][0]
    wait_for(lambda: _online(north) and _online(south), what="both instances online")
    me = Walk(new_page(LOCALES[lang]), world["url"], lang)

    # 1. log in with the one-time code; the dashboard in the browser's language
    me.login(*world["operator"])
    assert me.page.get_attribute("html", "lang") == lang
    me.see(me.t("Instances"), me.t("Accounts by status"), me.t("Running tasks"), selector="#dashboard")

    def dashboard_counts_both():
        me.go("/admin/")
        return "2 / 2" in me.text("#dashboard .figure")
    wait_for(dashboard_counts_both, what="the dashboard shows 2 / 2 instances online")

    # 2. QR login of a new account on north: the "phone" opens the scan and confirm URLs
    wait_for(lambda: WeworkAccount.objects.filter(instance=north).exists(), what="north's first account")
    before = list(WeworkAccount.objects.filter(instance=north).values_list("pk", flat=True))
    me.go(f"/admin/instances/weworkinstance/{north.pk}/qr-login/")
    me.page.click("#qr-start [type=submit]")
    me.page.wait_for_selector("#qr-simulator")
    scan_url, confirm_url = [a.get_attribute("href") for a in me.page.locator("#qr-simulator a").all()]
    assert httpx.get(scan_url).status_code == 200 and httpx.get(confirm_url).status_code == 200
    me.page.wait_for_function(
        "t => document.getElementById('qr-status').textContent.trim() === t", arg=me.t("Logged in"))
    account = wait_for(lambda: WeworkAccount.objects.filter(instance=north).exclude(pk__in=before).first(),
                       what="the new account")
    assert account.wxid in me.text("#qr-account")

    # 3. sync: the platform synced it after the login by itself; the operator syncs it again
    wait_for(lambda: _synced(account), what="the login's own sync",
             state=lambda: contact_services.sync_run(account))
    me.run_action("/admin/contacts/weworkaccount/", account.pk, "sync_selected")
    assert me.t("Sync started for %(n)d account.", "Sync started for %(n)d accounts.", 1) in me.flash()
    wait_for(lambda: _synced(account) and contact_services.sync_run(account)["trigger"] != "qr_login",
             what="the operator's sync done")
    account.refresh_from_db()
    wxids = list(shards.for_instance(Contact, north.pk).filter(account=account).order_by("nickname")
                 .values_list("wxid", flat=True))
    assert len(wxids) == len(sim.accounts[account.wxid].contacts) == 14

    # 4. one message of each type to one contact: sent at once, each ends "sent"
    for number, (mtype, fields) in enumerate(TYPES.items()):
        me.go(f"/messaging/compose/?account={account.pk}")
        me.page.check(f"input[name=contacts][value='{wxids[number]}']")
        me.page.select_option("#id_message_type", mtype)
        for name, value in fields.items():
            me.page.fill(f"#id_{name}", value if value is not None else wxids[-1])
        me.page.fill("#id_task_name", f"{lang}-{mtype}")
        me.page.click(".submit-row [type=submit]")
        me.page.wait_for_selector("#task-progress")
        assert me.t("Sent to %(n)d receiver: follow the progress below.",
                    "Sent to %(n)d receivers: follow the progress below.", 1) in me.flash(), mtype
    tasks = MessageTask.objects.filter(account=account, task_name__startswith=f"{lang}-")
    wait_for(lambda: tasks.filter(status=TaskStatus.COMPLETED, success_count=1).count() == len(TYPES),
             what="every message type sent")
    me.go(f"/messaging/tasks/{tasks.get(task_name=f'{lang}-location').pk}/")
    assert "outcome-all_sent" in me.page.get_attribute("#p-outcome", "class")

    # 4b. a template: picking it shows its text and asks for its variable, one input
    me.go(f"/messaging/compose/?account={account.pk}")
    me.page.check(f"input[name=contacts][value='{wxids[8]}']")
    me.page.select_option("#id_template", str(world["template"].pk))
    assert me.text("#template-text") == "{{ offer }} for {{ receiver_name }}"
    me.see(me.t("required"), selector="#template-variables")
    me.page.fill("#tvar-offer", "Two for one")
    me.page.fill("#id_task_name", f"{lang}-template")
    me.page.click(".submit-row [type=submit]")
    me.page.wait_for_selector("#task-progress")
    assert MessageTask.objects.get(task_name=f"{lang}-template").template_variables == {"offer": "Two for one"}

    # 4c. @ a member picked from the group chat's member list
    group = shards.for_instance(Group, north.pk).filter(account=account).order_by("group_name").first()
    me.go(f"/messaging/compose/?account={account.pk}")
    me.page.check(f"input[name=groups][value='{group.group_wxid}']")
    first = me.page.locator("#member-picker-members input").first
    member = first.get_attribute("value")
    first.check()
    assert me.page.input_value("#id_at_members") == member
    me.page.fill("#id_text", "Meeting at three")
    me.page.fill("#id_task_name", f"{lang}-at")
    me.page.click(".submit-row [type=submit]")
    me.page.wait_for_selector("#task-progress")
    at_task = MessageTask.objects.get(task_name=f"{lang}-at")
    wait_for(lambda: MessageTask.objects.get(pk=at_task.pk).success_count == 1, what="the @ message sent")
    receiver = at_task.receivers.get()
    assert shards.get(Message, receiver.message_id).at_members == [member]

    # 5. a broadcast to 8 contacts, confirmed, paused, resumed and cancelled
    me.go(f"/messaging/compose/?account={account.pk}")
    for wxid in wxids[:8]:
        me.page.check(f"input[name=contacts][value='{wxid}']")
    me.page.fill("#id_text", "Weekend offer for {{ receiver_name }}")
    me.page.fill("#id_send_interval", "1")
    me.page.fill("#id_task_name", f"{lang}-broadcast")
    me.page.click(".submit-row [type=submit]")
    me.page.wait_for_selector("#audience")
    assert re.sub(r"\s+", "", me.text("#audience")) == (
        re.sub(r"<[^>]+>|\s+", "", me.t("This broadcast goes to <strong>%(n)s</strong> receiver from %(sender)s.",
                                        "This broadcast goes to <strong>%(n)s</strong> receivers from %(sender)s.",
                                        8, sender=account.nickname or account.wxid)))
    me.page.click(".submit-row [type=submit].default")
    me.page.wait_for_selector("#task-progress")
    task = MessageTask.objects.get(task_name=f"{lang}-broadcast")
    assert task.target_count == 8
    me.page.wait_for_function("() => +document.getElementById('p-ok').textContent >= 1", timeout=45_000)
    # the dispatcher claimed the 8 receivers and sends them one a second: "in flight" is the one
    # being sent at most, the others wait
    progress = me.page.request.get(f"{world['url']}/messaging/tasks/{task.pk}/progress.json").json()
    assert progress["sending"] <= 1 and progress["pending"] + progress["sending"] + progress["success_count"] == 8
    me.page.click(f"form[action$='/{task.pk}/pause/'] [type=submit]")
    me.page.wait_for_selector("#task-progress")
    assert me.t("The task is paused.") in me.flash()
    me.see(me.t(TaskStatus.PAUSED.label), selector="#p-status")
    # the run ends: a send in flight when the pause came is recorded, the rest handed back
    wait_for(lambda: not task.receivers.filter(send_status=ReceiverSendStatus.SENDING).exists(),
             what="the dispatcher stopped")
    task.refresh_from_db()
    paused_at = task.success_count
    time.sleep(2.5)  # two more of the task's 1 s intervals: nothing goes out
    task.refresh_from_db()
    assert task.success_count == paused_at and task.status == TaskStatus.PAUSED
    me.page.click(f"form[action$='/{task.pk}/resume/'] [type=submit]")
    assert me.t("The task is resumed.") in me.flash()
    wait_for(lambda: MessageTask.objects.get(pk=task.pk).success_count > paused_at, what="sending again")
    me.page.once("dialog", lambda dialog: dialog.accept())
    me.page.click(f"form[action$='/{task.pk}/cancel/'] [type=submit]")
    me.page.wait_for_selector("#task-progress")
    assert me.t("The task is cancelled.") in me.flash()
    me.see(me.t(TaskStatus.CANCELLED.label), selector="#p-status")
    task.refresh_from_db()
    assert task.status == TaskStatus.CANCELLED and 0 < task.success_count < 8
    assert "outcome-cancelled" in me.page.get_attribute("#p-outcome", "class")
    ok_width = float(me.page.eval_on_selector("#p-seg-ok", "e => parseFloat(e.style.width)"))
    assert ok_width < 100

    # 6. the WeCom client of north crashes: an alert in the header and on the dashboard; the
    #    operator restarts the instance (confirmed) and the alert closes by itself
    assert httpx.post(f"{sim.url}/sim/client-exit", json={"reason": "crash"}).status_code == 200
    alert = wait_for(lambda: AlertRecord.objects.filter(rule_name="instance.client_exited",
                                                        source_id=str(north.pk)).first(), what="the alert")
    me.go("/admin/")
    assert me.page.locator("#alert-badge .alert-badge-count").inner_text().strip() == "1"
    with translation.override(lang):  # the alert reads in the reader's language
        title = str(alert.display_title)
    assert lang == "en" or title != alert.alert_title  # stored in the platform's language (the tests': en)
    me.see(title, selector="#dashboard")
    me.run_action("/admin/instances/weworkinstance/", north.pk, "restart_selected")
    me.see(me.t("Restart these instances?"))
    me.page.click("input[type=submit].default")
    me.page.wait_for_load_state()
    assert me.t("%(n)d instance restarting.", "%(n)d instances restarting.", 1) in me.flash()
    wait_for(lambda: AlertRecord.objects.get(pk=alert.pk).resolved_at is not None, what="the alert resolved")
    me.go("/admin/")
    assert me.page.locator("#alert-badge .alert-badge-count").count() == 0
    assert title not in me.text("#dashboard")

    # 6b. the other pages of the day open in the browser's language, without an error
    for path in ("/messaging/", f"/messaging/tasks/{task.pk}/", "/admin/monitoring/alertrecord/",
                 "/admin/monitoring/alertrule/", "/admin/messaging/messagetemplate/add/",
                 f"/admin/contacts/contact/?instance={north.pk}", f"/admin/contacts/group/?instance={north.pk}",
                 f"/admin/contacts/groupmember/?instance={north.pk}", "/admin/messaging/message/",
                 f"/admin/instances/weworkinstance/{north.pk}/change/", "/admin/accounts/user/"):
        me.go(path)
        assert me.page.get_attribute("html", "lang") == lang, path
        assert me.page.locator("#header").count() == 1, path

    # 7. a page that does not exist: the admin's frame, in the browser's language
    response = me.page.goto(world["url"] + "/admin/no-such-page-here/")
    assert response.status == 404
    me.see(me.t("Page not found"), me.t("Back to the home page"))

    # 8. the user granted south only sees south: instances, accounts, compose, dashboard
    them = Walk(new_page(LOCALES[lang]), world["url"], lang)
    them.login(*world["scoped"])
    them.see(them.t("Figures of the instance you were granted.", "Figures of the %(n)s instances you were granted.", 1),
             selector="#dashboard-scope")
    them.go("/admin/instances/weworkinstance/")
    names = them.text("#result_list")
    assert "south" in names and "north" not in names
    them.go("/admin/contacts/weworkaccount/")
    rows = them.page.locator("#result_list tbody tr").count()
    assert rows == WeworkAccount.objects.filter(instance=south).count() == 1
    them.go("/messaging/compose/")
    options = them.page.locator("select[name=account] option").all_inner_texts()
    assert any("south" in o for o in options) and not any("north" in o for o in options)
    response = them.page.goto(world["url"] + f"/messaging/tasks/{task.pk}/")
    assert response.status == 404
    print(f"walk in {lang}: {time.monotonic() - started:.1f} s")
