"""A fake WeChat Official Account API (customer-service messages) for tests and the demo.

async with running_fake_mp(clock=clock) as fake:
    fake.receive("oAlice")  # Alice wrote: the 48-hour window opens
    ...  # point an MpClient at fake.base_url, fake.app_id, fake.secret
    assert [d.openid for d in fake.deliveries] == ["oAlice"]
"""

from tests.support.fake_mp.server import FakeMp, Follower, MpDelivery, running_fake_mp

__all__ = ["FakeMp", "Follower", "MpDelivery", "running_fake_mp"]
