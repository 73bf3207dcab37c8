"""Mass-send statistics learn opt-outs from scrm (messaging's opt-out source, registered in
scrm's AppConfig.ready)."""
import datetime
from types import SimpleNamespace

import pytest
from django.utils import timezone

from contacts.tests.factories import WeworkAccountFactory
from messaging.services import stats
from scrm.models import OptOut
from scrm.services import optouts

pytestmark = pytest.mark.django_db


def test_scrm_is_the_registered_opt_out_source():
    assert optouts.opted_out_after_send in stats._opt_out_sources


def test_only_opt_outs_after_the_send_of_the_tasks_account_count():
    account, other = WeworkAccountFactory(), WeworkAccountFactory()
    sent = timezone.now() - datetime.timedelta(hours=2)
    OptOut.objects.create(account=account, contact_wxid="after", opted_out_at=sent + datetime.timedelta(minutes=5))
    OptOut.objects.create(account=account, contact_wxid="before", opted_out_at=sent - datetime.timedelta(days=1))
    OptOut.objects.create(account=account, contact_wxid="back-in", is_opted_out=False,
                          opted_out_at=sent + datetime.timedelta(minutes=1))
    OptOut.objects.create(account=other, contact_wxid="elsewhere", opted_out_at=sent + datetime.timedelta(minutes=1))
    task = SimpleNamespace(account_id=account.pk)
    receivers = [(wxid, sent) for wxid in ("after", "before", "back-in", "elsewhere", "never")]
    assert optouts.opted_out_after_send(task, receivers) == {"after"}
