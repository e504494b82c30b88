from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings


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
