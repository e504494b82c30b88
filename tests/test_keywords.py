import pytest

from bot.keywords import KeywordError, clean, normalize, tokens


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("reward model", "reward model"),
        ("  Reward   Model ", "Reward Model"),
        ("GPT-4", "GPT-4"),
        ("C++", "C++"),
        ("Schrödinger equation", "Schrödinger equation"),
        ("text-to-speech", "text-to-speech"),
        ("and", "and"),
        ("x" * 100, "x" * 100),
    ],
)
def test_accepted_keywords_are_cleaned(raw: str, stored: str) -> None:
    assert clean(raw) == stored


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "Give a keyword"),
        ("   \t ", "Give a keyword"),
        ("x" * 101, "at most 100"),
        ("reward\x00model", "control"),
        ("reward\u200bmodel", "invisible"),
        ('"reward model', "quote is not closed"),
        ("(diffusion", "parentheses"),
        ("ti:bengio", "only cat:"),
        ("diffusion AND medical", "operators"),
        ("a OR b", "operators"),
        ("a ANDNOT b", "operators"),
        ("<!channel>", "letters, digits"),
        ("@everyone", "letters, digits"),
        ("---", "at least one letter"),
    ],
)
def test_refused_keywords_say_why(raw: str, reason: str) -> None:
    with pytest.raises(KeywordError, match=reason):
        clean(raw)


def test_tokens_fold_case_punctuation_and_plurals() -> None:
    assert tokens("Reward-Models, for LLMs!") == ["reward", "model", "for", "llm"]
    assert tokens("class loss") == ["class", "loss"]


def test_normalize_identifies_spellings_of_one_keyword() -> None:
    assert normalize("Reward  Models") == normalize("reward model")
    assert normalize("reward model") != normalize("reward")
