"""Configuration: ``config.yaml`` validated into typed, frozen models.

Secrets may be written ``${ENV_VAR}`` (or ``${ENV_VAR:-default}``) and are filled from the
environment; ``SCRM_DATABASE_URL``
overrides the database URL. Any problem stops start-up with a message naming the key.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sop.audience.model import Duration
from sop.delivery.ratelimit import DOCUMENTED, Rate, RateLimits
from sop.delivery.rush import RushAvoidance
from sop.delivery.sender import SenderSettings
from sop.settings import SopSettings
from sop.staff.settings import StaffSettings

DEFAULT_DATABASE_URL = "sqlite:///var/scrm.db"
WECOM_API_BASE_URL = "https://qyapi.weixin.qq.com"
MP_API_BASE_URL = "https://api.weixin.qq.com"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
AesKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{43}$")]


class ConfigError(Exception):
    """The configuration cannot be used; the message says which key and why."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WecomApp(_Frozen):
    """A self-built app (自建应用), or the customer-contact (客户联系) callback, of the corp."""

    name: Name
    agent_id: int | None = None
    secret: str = ""
    token: str = Field(min_length=1, max_length=32)
    encoding_aes_key: AesKey


class AiBot(_Frozen):
    """An AI bot (智能机器人): JSON callbacks, receive id empty."""

    name: Name
    token: str = Field(min_length=1, max_length=32)
    encoding_aes_key: AesKey


class WecomConfig(_Frozen):
    corp_id: str = ""
    api_base_url: str = WECOM_API_BASE_URL
    apps: tuple[WecomApp, ...] = ()
    aibots: tuple[AiBot, ...] = ()

    @model_validator(mode="after")
    def _needs_corp_id(self) -> WecomConfig:
        if self.apps and not self.corp_id:
            raise ValueError("corp_id is required when apps are configured")
        _unique_names("apps", [a.name for a in self.apps])
        _unique_names("aibots", [a.name for a in self.aibots])
        return self


class MpAccount(_Frozen):
    """A WeChat Official Account (公众号); no ``encoding_aes_key`` means plain mode only."""

    name: Name
    app_id: str = Field(min_length=1)
    secret: str = ""
    token: str = Field(min_length=1, max_length=32)
    encoding_aes_key: AesKey | None = None


class ServerConfig(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    #: After SIGTERM or SIGINT, how long in-flight callbacks and claimed work may take before
    #: what is left is cut short (and taken up again by another process or the next start).
    shutdown_seconds: float = Field(default=20.0, gt=0, le=600)
    #: The address the platforms call (``https://scrm.example.com``) when it is not the one
    #: the server listens on (a load balancer in front); only shown in the start-up summary.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/\s]+(/[^\s]*)?$")


class RateConfig(_Frozen):
    """At most ``limit`` sends in any window of ``per`` (``1m``, ``1h``, ``30s``)."""

    limit: int = Field(ge=1)
    per: Duration

    @field_validator("per")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(f"per must be a positive duration such as 1m or 1h, got {value}")
        return value


class RushConfig(_Frozen):
    """Staff app messages avoid the first ``seconds`` of every :00 and :30 minute (WeCom's
    advice), nudged later by up to ``jitter`` more seconds."""

    seconds: float = Field(default=5.0, gt=0, lt=60)
    jitter: float = Field(default=10.0, ge=0, le=60)


RateScope = Annotated[str, Field(pattern=r"^(api|member)(:[A-Za-z0-9_/]+)?$")]


class DeliveryConfig(_Frozen):
    """The sender: claims of ``batch_size`` rows, ``concurrency`` sends at once, rate limits.

    ``limits`` overrides the documented limits by scope (``api``: every API per corp;
    ``member:message/send``: app messages per receiving staff member; ``api:<path>``: one
    API), each a list of rates; an empty list makes a scope unlimited. The limits are shared
    by every sender process through the database.
    """

    batch_size: int = Field(default=100, ge=1, le=10_000)
    concurrency: int = Field(default=16, ge=1, le=1_000)
    limits: dict[RateScope, tuple[RateConfig, ...]] = {}
    #: null switches the :00/:30 avoidance off.
    avoid_rush: RushConfig | None = RushConfig()
    #: The corp tag group new tags go to when a tag mirrored to WeCom names no group.
    tag_group: str = Field(default="SCRM", min_length=1, max_length=30)

    def rate_limits(self) -> RateLimits:
        overrides = {
            scope: tuple(Rate(r.limit, r.per) for r in rates)
            for scope, rates in self.limits.items()
        }
        return RateLimits({**DOCUMENTED, **overrides})

    def sender_settings(self) -> SenderSettings:
        rush = self.avoid_rush
        return SenderSettings(
            batch_size=self.batch_size,
            concurrency=self.concurrency,
            limits=self.rate_limits(),
            rush=None if rush is None else RushAvoidance(rush.seconds, rush.jitter),
        )


class Config(_Frozen):
    database_url: str = DEFAULT_DATABASE_URL
    timezone: str = "Asia/Shanghai"
    server: ServerConfig = Field(default_factory=ServerConfig)
    wecom: WecomConfig = Field(default_factory=WecomConfig)
    mp: tuple[MpAccount, ...] = ()
    mp_api_base_url: str = MP_API_BASE_URL
    sop: SopSettings = Field(default_factory=SopSettings)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    #: Customer inheritance: the successor of a member who leaves, the handover message.
    staff: StaffSettings = Field(default_factory=StaffSettings)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as Asia/Shanghai"
            ) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_url(cls, value: str) -> str:
        from store.db import normalize_url

        normalize_url(value)
        return value

    @model_validator(mode="after")
    def _unique_mp(self) -> Config:
        _unique_names("mp", [a.name for a in self.mp])
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def _unique_names(key: str, names: list[str]) -> None:
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise ValueError(f"{key}: names must be unique, repeated: {', '.join(sorted(seen))}")


def _expand_env(node: Any, path: str, environ: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: _expand_env(v, f"{path}.{k}" if path else str(k), environ) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_expand_env(v, f"{path}[{i}]", environ) for i, v in enumerate(node)]
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(f"{path}: environment variable {name} is not set")

        return _ENV_REF.sub(substitute, node)
    return node


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        shown = "" if item["type"] == "missing" else f" (got {item.get('input')!r})"
        lines.append(f"  {key}: {item['msg']}{shown}")
    return "\n".join(lines)


def parse_config(
    data: dict[str, Any], *, origin: str = "<config>", environ: dict[str, str] | None = None
) -> Config:
    env = dict(os.environ if environ is None else environ)
    expanded = _expand_env(data, "", env)
    if env.get("SCRM_DATABASE_URL"):
        expanded["database_url"] = env["SCRM_DATABASE_URL"]
    try:
        return Config.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration in {origin}:\n{_describe(exc)}") from None


def load_config(path: str | Path | None, *, environ: dict[str, str] | None = None) -> Config:
    """Read ``path`` (or use the defaults when it is None) and validate it."""
    if path is None:
        return parse_config({}, origin="defaults", environ=environ)
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of keys")
    return parse_config(_anchor_paths(data, file.parent), origin=str(file), environ=environ)


def _anchor_paths(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Relative playbook, campaign and template paths written in a config file mean "next
    to the file", so ``scrm --config /etc/scrm/config.yaml`` works from any folder."""
    sop = data.get("sop")
    if not isinstance(sop, dict):
        return data

    def anchored(value: Any) -> Any:
        if isinstance(value, str) and "${" not in value and not Path(value).is_absolute():
            return str(folder / value)
        return value

    sop = dict(sop)
    for key in ("playbooks", "campaigns"):
        if isinstance(sop.get(key), list):
            sop[key] = [anchored(v) for v in sop[key]]
    if "templates" in sop:
        sop["templates"] = anchored(sop["templates"])
    return {**data, "sop": sop}
