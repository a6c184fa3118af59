"""The WeCom API: an async client with a shared access token and typed, bounded errors."""

from bot.wecom.client import WecomClient
from bot.wecom.errors import (
    TransientWecomError,
    WecomApiError,
    WecomCredentialsError,
    WecomError,
)

__all__ = [
    "TransientWecomError",
    "WecomApiError",
    "WecomClient",
    "WecomCredentialsError",
    "WecomError",
]
