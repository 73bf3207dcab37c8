"""The one lock order of counter rows (docs/messaging.md, "Lock order"): receivers, messages,
the task, account rows, then their instance's row. Transactions that take them in another
order deadlock against each other under load (issue 12: webhook processing against the
dispatcher's flushes, 29 deadlocks in one run)."""
import re

import pytest

from contacts.models import AccountStatus, WeworkAccount
from instances import services as instance_services
from instances.tests.factories import WeworkInstanceFactory
from wework.testing.instances import heartbeat_data, make_event
from wework.testing.queries import capture_queries

pytestmark = pytest.mark.django_db(transaction=True)

WRITE = re.compile(r'^\s*(UPDATE|INSERT INTO|SELECT .* FOR UPDATE)', re.I | re.S)


def written_tables(queries):
    """The tables in the order the transaction first locked (wrote or locked) them."""
    order = []
    for q in queries:
        sql = q["sql"]
        if not WRITE.match(sql):
            continue
        m = re.search(r'(?:UPDATE|INTO|FROM)\s+[`"]?(\w+)[`"]?', sql, re.I)
        if m and m.group(1) not in order:
            order.append(m.group(1))
    return order


def test_heartbeat_locks_accounts_before_their_instance():
    instance = WeworkInstanceFactory()
    WeworkAccount.objects.create(instance=instance, wxid="wxid_a", nickname="A",
                                 status=AccountStatus.OFFLINE, is_logged_in=False)
    event = make_event(instance, "instance.heartbeat",
                       heartbeat_data(accounts=[{"account_id": "wxid_a", "status": "online"}]), seq=1)
    with capture_queries() as ctx:
        instance_services.dispatch_event(instance, event)
    order = [t for t in written_tables(ctx.captured_queries) if t in ("wework_accounts", "wework_instances")]
    assert order == ["wework_accounts", "wework_instances"], order
