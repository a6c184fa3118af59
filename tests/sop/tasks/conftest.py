"""Task tests run on both databases with the manual clock; the directory is the fake WeCom."""

from tests.bot.conftest import fake_wecom, wecom_client

__all__ = ["fake_wecom", "wecom_client"]
