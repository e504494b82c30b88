"""Settings from a TOML file and `PAPERS_BOT_*` environment variables (env wins)."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as SourceError
from redis.connection import parse_url

from bot import categories as taxonomy
from bot import keywords as kw

DEFAULT_CONFIG = Path("settings.toml")
ENV_PREFIX = "PAPERS_BOT_"


class SettingsError(Exception):
    """A one-line explanation of what is wrong with the settings."""


class Conflict(ValueError):
    """Two settings that contradict each other, raised by a model validator: `key` (under
    the model's own place) is the one reported."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


Snowflake = Annotated[int, Field(ge=0, lt=2**64)]
"""A Discord id: an unsigned 64-bit number."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArxivSettings(_Section):
    api_url: str = "https://export.arxiv.org/api/query"
    rss_url: str = Field("https://rss.arxiv.org/rss/", pattern=r"^https?://.*/$")
    oai_url: str = Field("https://oaipmh.arxiv.org/oai", pattern=r"^(https?://.+)?$")
    """arXiv's OAI-PMH interface: what a catch-up over missed days reads (empty: submission
    date windows only)."""
    request_interval: float = Field(3.0, ge=0, le=600)
    timeout: float = Field(30.0, gt=0, le=600)
    """Seconds for a whole request, connecting to the last byte."""
    max_response_mb: float = Field(64.0, ge=1, le=1024)
    """The largest answer read from arXiv; a larger one is a failed request."""
    stale_recheck_minutes: float = Field(30.0, ge=1, le=720)
    """How long `papers-bot run` waits before reading a stale listing again."""
    stale_rechecks: int = Field(12, ge=0, le=96)
    """How many times it does, at most, before the next scheduled run."""
    max_retries: int = Field(3, ge=0, le=10)
    retry_backoff: float = Field(5.0, ge=0, le=300)
    """Seconds before the first retry, doubled for each next one."""
    max_retry_after: float = Field(120.0, ge=0, le=3600)
    """The longest arXiv's Retry-After is honoured, in seconds: the run waits that long."""
    max_results: int = Field(100, ge=1, le=2000)
    categories: list[str] = []
    window_days: int = Field(7, ge=1, le=60)
    batch_size: int = Field(20, ge=1, le=50)
    page_size: int = Field(500, ge=10, le=2000)
    max_window_results: int = Field(5000, ge=100, le=30000)

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        for name in value:
            if not taxonomy.is_known(name):
                hint = taxonomy.suggestion(name)
                more = f" (did you mean {hint}?)" if hint else ""
                raise ValueError(f"{name!r} is not an arXiv category or archive{more}")
        return value


class DigestSettings(_Section):
    first_run_papers: int = Field(5, ge=0, le=100)
    max_papers_per_channel: int = Field(50, ge=1, le=1000)
    seen_retention_days: int = Field(90, ge=7, le=3650)
    """Ten years at most: a channel's seen set holds every paper it got in this time."""
    channel_deadline: float = Field(900.0, ge=60, le=7200)
    """Seconds one channel's delivery may take, rate-limit waits included; what is not out by
    then comes with the next run. At least a second per paper (Slack's pace, one message a
    second, at worst one paper a message): `max_papers_per_channel` seconds."""

    @field_validator("channel_deadline")
    @classmethod
    def _deadline_fits_the_cap(cls, value: float, info: ValidationInfo) -> float:
        cap = info.data.get("max_papers_per_channel")
        if isinstance(cap, int) and value < cap:
            raise ValueError(
                f"{value:g}s is less than a second per paper of max_papers_per_channel ({cap})"
            )
        return value


class CommandSettings(_Section):
    max_keywords_per_channel: int = Field(25, ge=1, le=500)
    preview_papers: int = Field(3, ge=0, le=10)
    recent_default: int = Field(5, ge=1, le=50)
    recent_max: int = Field(20, ge=1, le=100)
    per_user_per_minute: int = Field(20, ge=1, le=1000)
    arxiv_per_user_per_minute: int = Field(5, ge=1, le=1000)
    """arXiv requests one member's commands may cause a minute (each page and retry counts);
    commands that ask arXiv nothing count only against `per_user_per_minute`."""
    arxiv_share: float = Field(0.5, ge=0, le=1)
    """Share of arXiv's capacity (a request every `request_interval`) all commands together
    may use, across replicas; at least one request a minute unless 0 (commands then answer
    only from what the digest keeps). No bound when `request_interval` is 0."""
    cache_minutes: float = Field(10.0, ge=0, le=1440)
    """How long `/papers recent` keeps arXiv's answer for keywords the digest doesn't keep
    (nobody follows them, or not fetched yet): asking again costs no request. 0: not kept."""
    max_channels: int = Field(500, ge=1, le=100_000)
    max_channels_per_member: int = Field(10, ge=1, le=1000)
    """Channels one member may bring the bot to (their first chat keyword there)."""
    max_channels_per_space: int = Field(100, ge=1, le=100_000)
    """Channels of one Slack workspace or Discord server that may follow keywords."""
    drop_after_failures: int = Field(3, ge=1, le=30)
    """Days in a row a channel is gone (Slack `channel_not_found`, `is_archived`; Discord
    404 Unknown Channel) before its chat subscriptions are dropped."""

    @model_validator(mode="after")
    def _default_within_max(self) -> Self:
        if self.recent_default > self.recent_max:
            raise Conflict(
                "recent_default",
                f"{self.recent_default} is more than recent_max ({self.recent_max})",
            )
        return self


class SignalsSettings(_Section):
    buttons: bool = True
    """👍 Relevant, 🔖 Save and 👎 Less like this under each paper posted to Slack and Discord."""
    rank: bool = True
    """Order a channel's digest, and choose what its cap keeps, by the papers it voted for."""
    explain: bool = True
    """A short line under each posted paper: the keyword, the paper's words that matched it,
    and in a ranked digest the terms that raised it most."""
    alerts: bool = True
    """Tell who saved a paper, privately, when a listing brings its new version, journal
    reference or DOI (Slack and Discord; each user can turn it off with /papers set alerts)."""


class SlackSettings(_Section):
    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    mode: Literal["socket", "http"] = "socket"
    http_host: str = "0.0.0.0"
    http_port: int = Field(3000, ge=0, le=65535)
    api_url: str | None = None
    allowed_users: list[str] = []


class DiscordSettings(_Section):
    token: SecretStr | None = None
    """The bot's token (Developer Portal, Bot, Reset Token)."""
    application_id: Snowflake | None = None
    """Lets `papers-bot check` print the invite URL without logging in."""
    guild_ids: list[Snowflake] = []
    """Register /papers in these servers only (changes show at once); empty: globally."""
    allowed_guilds: list[Snowflake] = Field([], max_length=1000)
    """Servers whose members may use /papers and the buttons; empty: those of `guild_ids`.
    Interactions from any other server, and from DMs, get one line and change nothing."""
    any_guild: bool = False
    """With `allowed_guilds` and `guild_ids` both empty: true serves any server the bot is
    invited to (a public bot); false, the default, refuses every server."""
    api_url: str | None = Field(None, pattern=r"^https?://")
    """REST base with its version, e.g. `http://127.0.0.1:8080/api/v10` (proxies, tests)."""
    gateway_url: str | None = Field(None, pattern=r"^wss?://")
    allowed_users: list[Snowflake] = []
    """User and role IDs that may add and remove keywords; when both are empty, members
    with the Manage Channels permission may."""
    allowed_roles: list[Snowflake] = []

    @field_validator("token")
    @classmethod
    def _stripped(cls, value: SecretStr | None) -> SecretStr | None:
        """The token as it is sent (a pasted token often ends in a newline), so that the
        log scrubber looks for what is used."""
        return None if value is None else SecretStr(value.get_secret_value().strip())


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ScheduleSettings(_Section):
    time: str = Field("08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = "UTC"
    weekdays: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS[:5]), min_length=1)
    weekly_day: Weekday = "fri"
    """The day of the week's papers (channels with `weekly` on), in `timezone`."""
    weekly_time: str = Field("16:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value


class ServiceSettings(_Section):
    health_host: str = "0.0.0.0"
    health_port: int = Field(8080, ge=0, le=65535)
    log_format: Literal["kv", "json"] = "kv"
    lock_ttl: float = Field(60.0, ge=1, le=3600)
    """Seconds; a channel whose holder died waits this long, so an hour at most."""
    shutdown_grace: float = Field(10.0, ge=0, le=600)
    """Seconds; orchestrators kill a process that takes longer to stop anyway."""


class WebhookSettings(_Section):
    """Incoming webhooks that take Slack-compatible JSON (Mattermost, Rocket.Chat, Zulip's
    Slack-compatible integration, Discord's `/slack` endpoint)."""

    max_chars: int = Field(2000, ge=500, le=40000)
    interval: float = Field(1.0, ge=0, le=60)
    """Seconds between posts to one URL; every message of a digest waits it."""
    timeout: float = Field(10.0, gt=0, le=120)
    max_retries: int = Field(3, ge=0, le=10)
    max_retry_after: float = Field(60.0, ge=0, le=3600)
    """The longest 429 wait (Retry-After) honoured, in seconds; a 429 asking for more fails
    the channel for this run (its papers come with the next)."""


class SubscriptionSettings(_Section):
    platform: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    """The name a platform plugin registered (`slack`, `discord`, `markdown`, `console`,
    `webhook`, or a third-party one); checked against the installed platforms at start-up."""
    channel: str = Field(min_length=1)
    keywords: list[str] = Field(min_length=1)
    revisions: bool = False
    quiet_days: bool = False
    weekly: bool = False
    """Post the week's most voted papers here (`[schedule] weekly_day`, `weekly_time`)."""

    @field_validator("keywords")
    @classmethod
    def _valid_keywords(cls, value: list[str]) -> list[str]:
        cleaned: list[str] = []
        for raw in value:
            try:
                cleaned.append(kw.clean(raw))
            except kw.KeywordError as err:
                raise ValueError(f"{raw!r}: {err}") from None
        return cleaned


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_ignore_empty=True,
        extra="forbid",
    )

    redis_url: str = "redis://localhost:6379/0"
    key_prefix: str = Field("papers-bot", min_length=1)
    redis_allow_eviction: bool = False
    """Start on a Redis whose `maxmemory-policy` evicts keys (anything but `noeviction`)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    arxiv: ArxivSettings = ArxivSettings()
    digest: DigestSettings = DigestSettings()
    commands: CommandSettings = CommandSettings()
    signals: SignalsSettings = SignalsSettings()
    slack: SlackSettings = SlackSettings()
    discord: DiscordSettings = DiscordSettings()
    webhook: WebhookSettings = WebhookSettings()
    plugins: dict[str, dict[str, Any]] = {}
    """`[plugins.NAME]`: settings of a third-party platform, handed to it as they are."""
    schedule: ScheduleSettings = ScheduleSettings()
    service: ServiceSettings = ServiceSettings()
    subscriptions: list[SubscriptionSettings] = []

    @model_validator(mode="after")
    def _retention_covers_the_window(self) -> Self:
        days, window = self.digest.seen_retention_days, self.arxiv.window_days
        if days < window:
            raise Conflict(
                "digest.seen_retention_days",
                f"{days} is less than arxiv.window_days ({window}): "
                "papers still in the window would be posted again",
            )
        return self


def config_path(explicit: Path | None = None) -> Path | None:
    """`--config`, else `PAPERS_BOT_CONFIG`, else `./settings.toml` when it exists."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def load_settings(explicit: Path | None = None) -> Settings:
    path = config_path(explicit)
    if path is not None:
        if not path.is_file():
            raise SettingsError(f"settings file {path} does not exist")
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise SettingsError(f"{path}: not valid TOML: {err}") from None

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            return tuple(sources)

    try:
        return _FromFile()
    except ValidationError as err:
        raise SettingsError(_describe(err, path)) from None
    except SourceError as err:  # a variable pydantic-settings could not parse as JSON
        raise SettingsError(_unparsed(err)) from None


def _describe(err: ValidationError, path: Path | None) -> str:
    first = err.errors()[0]
    loc = [str(part) for part in first["loc"]]
    message = first["msg"]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, ValueError):
        message = str(cause)  # without pydantic's "Value error, "
    if isinstance(cause, Conflict):
        loc += cause.key.split(".")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    key = ".".join(loc) or "(settings)"
    env_name = ENV_PREFIX + "__".join(part.upper() for part in loc if not part.isdigit())
    where = f"{path} or {env_name}" if path else env_name
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"invalid setting {key} (from {where}): {message}{more}"


def _unparsed(err: SourceError) -> str:
    """One line for pydantic-settings' 'error parsing value for field "arxiv"': the
    variable (or the variables it could be) and what JSON says is wrong."""
    field = str(err).split('"')[1] if str(err).count('"') >= 2 else ""
    prefix = (ENV_PREFIX + field).upper()
    names = sorted(
        name
        for name, value in os.environ.items()
        if name.upper().startswith(prefix) and not _json_or_plain(value)
    )
    where = names[0] if len(names) == 1 else f"{prefix}…"
    cause = err.__cause__
    reason = f"not valid JSON: {cause}" if isinstance(cause, ValueError) else str(err)
    return f"invalid setting {field or '(settings)'} (from {where}): {reason}"


def _json_or_plain(value: str) -> bool:
    """False for a value that looks like JSON (a list or a table) and isn't."""
    if not value.lstrip().startswith(("[", "{")):
        return True
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def redacted_url(url: str) -> str:
    """`url` safe to print. A Redis URL as redis-py reads it (`parse_url`): host, port and
    database, `***@` for a user or password, no query options (`?password=` is one); any
    other URL without its user, password, query and fragment."""
    if not url.lower().startswith(REDIS_SCHEMES):
        parts = urlsplit(url)
        if "@" not in parts.netloc and not parts.query and not parts.fragment:
            return url
        netloc = parts.netloc.rpartition("@")[2]
        netloc = "***@" + netloc if "@" in parts.netloc else netloc
        query = "***" if parts.query else ""
        return urlunsplit(parts._replace(netloc=netloc, query=query, fragment=""))
    scheme = url.partition(":")[0].lower()
    found = _redis_parts(url)
    if found is None:
        return f"{scheme}://(unreadable URL)"
    secret = "***@" if found.get("username") or found.get("password") else ""
    if scheme == "unix":
        db = f"?db={found['db']}" if "db" in found else ""
        return f"unix://{secret}{found.get('path', '')}{db}"
    host = str(found.get("host", ""))
    host = f"[{host}]" if ":" in host else host
    port = f":{found['port']}" if "port" in found else ""
    db = f"/{found['db']}" if "db" in found else ""
    return f"{scheme}://{secret}{host}{port}{db}"


def _redis_parts(url: str) -> dict[str, Any] | None:
    """What redis-py connects with (`redis.connection.parse_url`); None when it can't."""
    try:
        parts: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError:
        return None
    return parts


def _redis_password(url: str) -> str | None:
    if not url.lower().startswith(REDIS_SCHEMES):
        return None
    parts = _redis_parts(url)
    if parts is None:
        return urlsplit(url).password  # redis-py would not connect; still never logged
    return str(parts["password"]) if parts.get("password") else None


def secret(value: SecretStr | None, section: str, name: str) -> str:
    """A secret setting's value, unwrapped only to be handed to the library that sends it;
    `SettingsError` saying where to set it when it is missing or blank."""
    text = "" if value is None else value.get_secret_value().strip()
    if not text:
        env = f"{ENV_PREFIX}{section}__{name}".upper()
        raise SettingsError(f"[{section}] {name} is not set (settings file or {env})")
    return text


def secret_values(settings: Settings) -> list[str]:
    """Every secret in the settings, for scrubbing logs."""
    secrets = [
        settings.slack.bot_token,
        settings.slack.app_token,
        settings.slack.signing_secret,
        settings.discord.token,
    ]
    found = [s.get_secret_value() for s in secrets if s is not None]
    password = _redis_password(settings.redis_url)
    # A channel that is a URL (an incoming webhook) is a secret too.
    hooks = [sub.channel for sub in settings.subscriptions if "://" in sub.channel]
    return [*found, *([password] if password else []), *hooks]
