"""Channel tests send through the sender, the real client and the fake WeCom server."""

from tests.support.outbox import channels, make_sender, seed_people

__all__ = ["channels", "make_sender", "seed_people"]
