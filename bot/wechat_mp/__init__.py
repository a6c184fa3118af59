"""The WeChat Official Account API: customer-service messages, over the WeCom wire layer."""

from bot.wechat_mp.client import MP_API_BASE_URL, MpClient, mp_credential
from bot.wechat_mp.errors import MpApiError, MpCredentialsError

__all__ = ["MP_API_BASE_URL", "MpApiError", "MpClient", "MpCredentialsError", "mp_credential"]
