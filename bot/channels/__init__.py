"""Channel adapters: the sender's :class:`~sop.delivery.channel.Channel` over the WeCom client.

One module per channel; the composition root builds the ones the configuration allows and
hands them to :class:`~sop.delivery.sender.Sender`.
"""

from bot.channels.app_message import AppMessageChannel
from bot.channels.mass_message import MassMessageChannel
from bot.channels.mp_message import MpMessageChannel
from bot.channels.tags import TagChannel
from bot.channels.welcome import WelcomeChannel

__all__ = [
    "AppMessageChannel",
    "MassMessageChannel",
    "MpMessageChannel",
    "TagChannel",
    "WelcomeChannel",
]
