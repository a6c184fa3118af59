"""A fake WeCom API server for tests and the demo: real HTTP, real shapes, real errcodes.

async with running_fake_wecom(clock=clock) as fake:
    fake.add_staff("zhangsan", "张三")
    fake.add_customer("wmCustomer1", "Alice", follow=["zhangsan"])
    fake.fail_next("externalcontact/get", 45009)
    ...  # point a WecomClient at fake.base_url, fake.corp_id, fake.secret
    assert fake.calls_to("externalcontact/get")[0].errcode == 45009
"""

from tests.support.fake_wecom.faults import Call
from tests.support.fake_wecom.models import (
    Customer,
    Follow,
    GroupChat,
    GroupMember,
    Staff,
    Tag,
    TagGroup,
)
from tests.support.fake_wecom.server import FakeWecom, running_fake_wecom

__all__ = [
    "Call",
    "Customer",
    "FakeWecom",
    "Follow",
    "GroupChat",
    "GroupMember",
    "Staff",
    "Tag",
    "TagGroup",
    "running_fake_wecom",
]
