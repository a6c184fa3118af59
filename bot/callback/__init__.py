"""Callback ingest: verify, decrypt, store in the inbox, answer. Nothing slow before the answer.

``add_callback_routes`` mounts the endpoints; ``InboxWriter`` stores with group commit;
``samples`` builds correctly signed callbacks for tests, ``scrm simulate`` and the bench.
"""

from bot.callback.crypto import CallbackError, DecryptError, MalformedCallback, SignatureError
from bot.callback.inbox_writer import InboxWriteError, InboxWriter, WriterStats
from bot.callback.request import INBOX_WRITER
from bot.callback.routes import add_callback_routes

__all__ = [
    "INBOX_WRITER",
    "CallbackError",
    "DecryptError",
    "InboxWriteError",
    "InboxWriter",
    "MalformedCallback",
    "SignatureError",
    "WriterStats",
    "add_callback_routes",
]
