"""The sender's tests run against the real channels and the fake WeCom server."""

from tests.bot.conftest import fake_wecom, wecom_client
from tests.support.outbox import channels, make_sender, seed_people

__all__ = ["channels", "fake_wecom", "make_sender", "seed_people", "wecom_client"]
