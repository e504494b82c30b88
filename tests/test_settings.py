import logging
from collections.abc import Iterator
from pathlib import Path
from types import NoneType
from typing import Annotated, Any, get_args, get_origin

import pytest
from pydantic import BaseModel

from bot.logs import Redact
from bot.settings import Settings, SettingsError, load_settings, redacted_url, secret_values


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PAPERS_BOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_file() -> None:
    settings = load_settings()
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.arxiv.api_url == "https://export.arxiv.org/api/query"
    assert settings.arxiv.request_interval == 3
    assert settings.arxiv.max_results == 100
    assert settings.subscriptions == []


def test_env_beats_file_beats_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        tmp_path / "settings.toml",
        "[arxiv]\nrequest_interval = 5\ntimeout = 9\n"
        '[[subscriptions]]\nplatform = "markdown"\nchannel = "README.md"\nkeywords = ["a"]\n',
    )
    monkeypatch.setenv("PAPERS_BOT_ARXIV__REQUEST_INTERVAL", "7")
    settings = load_settings()
    assert settings.arxiv.request_interval == 7
    assert settings.arxiv.timeout == 9
    assert settings.arxiv.max_retries == 3
    assert settings.subscriptions[0].keywords == ["a"]


def test_config_from_flag_and_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flag = write(tmp_path / "a.toml", 'redis_url = "memory://"\n')
    env = write(tmp_path / "b.toml", 'key_prefix = "other"\n')
    monkeypatch.setenv("PAPERS_BOT_CONFIG", str(env))
    assert load_settings(flag).redis_url == "memory://"
    assert load_settings().key_prefix == "other"


def test_secret_tokens_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPERS_BOT_SLACK__BOT_TOKEN", "xoxb-very-secret")
    settings = load_settings()
    assert settings.slack.bot_token is not None
    assert settings.slack.bot_token.get_secret_value() == "xoxb-very-secret"
    assert "xoxb-very-secret" not in repr(settings) + str(settings)


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[arxiv]\nrequest_intervall = 3\n", "invalid setting arxiv.request_intervall"),
        ("[arxiv]\ntimeout = -1\n", "invalid setting arxiv.timeout"),
        ("nonsense = 1\n", "invalid setting nonsense"),
        (
            '[[subscriptions]]\nplatform = "markdown"\nchannel = "R.md"\nkeywords = ["a OR b"]\n',
            "invalid setting subscriptions.0.keywords",
        ),
        ('[[subscriptions]]\nplatform = "IRC chat"\nchannel = "x"\nkeywords = ["a"]\n', "platform"),
        ("[arxiv\n", "not valid TOML"),
        (
            '[arxiv]\ncategories = ["cs.cl"]\n',
            "invalid setting arxiv.categories (from ",
        ),
        ('[arxiv]\ncategories = ["cs.cl"]\n', "did you mean cs.CL?"),
    ],
)
def test_a_wrong_key_or_value_is_one_line_naming_key_and_file(
    tmp_path: Path, toml: str, expected: str
) -> None:
    path = write(tmp_path / "settings.toml", toml)
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    message = str(err.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_missing_config_file_is_reported() -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(Path("nowhere.toml"))


def test_example_settings_file_is_valid() -> None:
    example = Path(__file__).resolve().parents[1] / "settings.example.toml"
    settings = load_settings(example)
    assert settings.subscriptions


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPERS_BOT_SLACK__BOT_TOKEN", "")
    assert load_settings().slack.bot_token is None


def _number(annotation: Any) -> type | None:
    """int or float, when `annotation` is one (optional, or inside `Annotated`)."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    args = [a for a in get_args(annotation) if a is not NoneType]
    if len(args) == 1 and get_origin(annotation) is not list:
        return _number(args[0])
    return annotation if annotation in (int, float) else None


def _number_fields(model: type[BaseModel], section: str = "") -> Iterator[tuple[str, str, str]]:
    """(section, key, a TOML value past any sensible bound) for every number setting."""
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _number_fields(annotation, name)
            continue
        in_list = get_origin(annotation) is list
        kind = _number(get_args(annotation)[0] if in_list else annotation)
        if kind is None:
            continue
        huge = str(2**64) if kind is int else "inf"
        yield section, name, f"[{huge}]" if in_list else huge


NUMBER_FIELDS = list(_number_fields(Settings))


@pytest.mark.parametrize(
    ("section", "key", "value"), NUMBER_FIELDS, ids=[f"{s}.{k}" for s, k, _ in NUMBER_FIELDS]
)
def test_every_number_setting_has_an_upper_bound(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    """Issue 22, finding 12: `seen_retention_days = 1000000` was accepted, then overflowed
    after every post (the same paper posted on every run)."""
    assert len(NUMBER_FIELDS) > 30
    path = write(tmp_path / "settings.toml", f"[{section}]\n{key} = {value}\n")
    with pytest.raises(SettingsError, match=rf"^invalid setting {section}\.{key}\b"):
        load_settings(path)


async def test_the_longest_seen_retention_allowed_still_works(
    tmp_path: Path, redis_client: Any
) -> None:
    """At the bound, the end of a channel's run (which trims what is older than the
    retention) still works on both stores; a million days made it overflow."""
    from datetime import timedelta

    from bot.models import Channel
    from bot.state.memory import MemoryStore
    from bot.state.redis import RedisStore

    path = write(tmp_path / "settings.toml", "[digest]\nseen_retention_days = 3650\n")
    kept = timedelta(days=load_settings(path).digest.seen_retention_days)
    channel = Channel("slack", "C1")
    for store in (MemoryStore(seen_retention=kept), RedisStore(redis_client, seen_retention=kept)):
        await store.mark_seen(channel, ["2611.00001"])
        await store.mark_seen(channel, ["2611.00002"])
        assert await store.unseen(channel, ["2611.00001", "2611.00002", "2611.00003"]) == {
            "2611.00003"
        }


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            "[commands]\nrecent_default = 30\nrecent_max = 20\n",
            "invalid setting commands.recent_default (from {path} or "
            "PAPERS_BOT_COMMANDS__RECENT_DEFAULT): 30 is more than recent_max (20)",
        ),
        (
            "[arxiv]\nwindow_days = 30\n[digest]\nseen_retention_days = 14\n",
            "invalid setting digest.seen_retention_days (from {path} or "
            "PAPERS_BOT_DIGEST__SEEN_RETENTION_DAYS): 14 is less than arxiv.window_days (30): "
            "papers still in the window would be posted again",
        ),
    ],
)
def test_settings_that_contradict_each_other_are_one_line(
    tmp_path: Path, toml: str, expected: str
) -> None:
    path = write(tmp_path / "settings.toml", toml)
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert str(err.value) == expected.format(path=path)


def test_malformed_json_in_a_variable_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    monkeypatch.setenv("PAPERS_BOT_ARXIV__CATEGORIES", "[cs")
    assert main(["check"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "papers-bot: invalid setting arxiv (from PAPERS_BOT_ARXIV__CATEGORIES): "
        "not valid JSON: Expecting value: line 1 column 2 (char 1)\n"
    )


def test_a_redis_password_in_the_query_is_scrubbed_and_never_shown() -> None:
    """Issue 22, finding 8: `?password=` was neither redacted nor scrubbed."""
    settings = Settings(redis_url="redis://127.0.0.1:6379/0?password=hunter2-redis-password")
    assert "hunter2-redis-password" in secret_values(settings)
    assert redacted_url(settings.redis_url) == "redis://***@127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:pw-secret@10.0.0.1:6380/2", "redis://***@10.0.0.1:6380/2"),
        ("redis://user:pw-secret@h/0?db=3&password=x", "redis://***@h/3"),
        ("rediss://h:6379?password=pw-secret&ssl_cert_reqs=none", "rediss://***@h:6379"),
        ("unix:///run/redis.sock?password=pw-secret&db=1", "unix://***@/run/redis.sock?db=1"),
        ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
        ("redis://h:notaport/0?password=pw-secret", "redis://(unreadable URL)"),
        ("memory://", "memory://"),
        ("https://export.arxiv.org/api/query", "https://export.arxiv.org/api/query"),
        (
            "http://me:pw-secret@127.0.0.1:8080/api/query?key=pw-secret#x",
            "http://***@127.0.0.1:8080/api/query?***",
        ),
    ],
)
def test_printed_urls_keep_no_credentials(url: str, shown: str) -> None:
    assert redacted_url(url) == shown
    assert "pw-secret" not in redacted_url(url)


def test_the_discord_token_is_scrubbed_as_it_is_used() -> None:
    """Issue 22, finding 16: the token was stripped before use but scrubbed unstripped, so
    the token as sent (and logged by a library) was not scrubbed."""
    from adapters.discord.app import token_of

    settings = Settings.model_validate({"discord": {"token": " discord-secret-token\n"}})
    used = token_of(settings)
    assert used == "discord-secret-token"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "Bot %s", (used,), None)
    Redact(secret_values(settings)).filter(record)
    assert record.getMessage() == "Bot ***"
