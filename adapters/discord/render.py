"""Digests and replies as Discord messages: escaped, mention-safe, always within Discord's limits.

Pure functions: nothing here talks to Discord. Lengths are counted in UTF-16 code units, which
is never less than what Discord counts, so a message that fits here fits there.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import discord

from bot import bibtex, explain, wording
from bot.commands import Reply
from bot.links import venue
from bot.models import Digest, Paper, Why
from bot.weekly import WeeklyPost

CONTENT_LIMIT = 2000
EMBEDS_PER_MESSAGE = 10
PAPERS_WITH_BUTTONS = 8
"""Papers a digest message carries when each has three buttons: Discord allows 25 a message."""
EMBEDS_TOTAL_LIMIT = 6000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048

AUTHORS_LIMIT = 256
COMMENT_LIMIT = 512
VENUE_LIMIT = 128
DEFAULT_ABSTRACT_CHARS = 600
WHY_LIMIT = 300
"""The "Why" field under a paper (`[signals] explain`), escaped; fields take 1024."""
ARXIV_RED = 0xB31B1B
ELLIPSIS = "…"
ZWSP = "\u200b"

_URL = re.compile(r"https?://[^\s<>]+")
_SAFE_URL = re.compile(r"^https://[\w.:/%~+-]+$")
_INLINE_MARKUP = re.compile(r"[\\*_~`|\[\]]")
_LINE_MARKUP = re.compile(r"^(\s*)([#>+-])", re.MULTILINE)
_NUMBERED_LIST = re.compile(r"^(\s*\d+)\.(?=\s)", re.MULTILINE)
# `@` starts `@everyone`, `@here` and `<@123>`; `<#1>`, `<:e:1>`, `<t:1>`, `</cmd:1>` and
# `<id:home>` start with `<` and a sigil or a word and colon.
_MENTION_START = re.compile(r"@|<(?=[#:/]|[a-z]+:)")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One Discord message: its text, its embeds, and the papers it carries."""

    content: str
    embeds: tuple[discord.Embed, ...] = ()
    paper_ids: tuple[str, ...] = ()
    numbers: tuple[int, ...] = ()
    """The number each paper's embed shows (`#3`), which its buttons repeat; none without."""


def units(text: str) -> int:
    """Length as Discord's JavaScript counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def neutralize_mentions(text: str) -> str:
    """`@everyone`, `<@123>`, `<@&1>`, `<#1>`, `<t:…>`… become inert text: a zero-width space
    after the character that starts them."""
    return _MENTION_START.sub(rf"\g<0>{ZWSP}", text)


def _escape_plain(text: str) -> str:
    text = _INLINE_MARKUP.sub(r"\\\g<0>", text)
    text = _LINE_MARKUP.sub(r"\1\\\2", text)
    text = _NUMBERED_LIST.sub(r"\1\\.", text)
    return neutralize_mentions(text)


def escape(text: str) -> str:
    """Text shown literally by Discord's markdown, with no mention in it. URLs stay clickable."""
    parts: list[str] = []
    last = 0
    for url in _URL.finditer(text):
        parts.append(_escape_plain(text[last : url.start()]))
        parts.append(url.group())
        last = url.end()
    parts.append(_escape_plain(text[last:]))
    return "".join(parts)


def _cut(text: str, keep: int) -> str:
    """At most `keep` characters of `text`, at a word boundary when one is near."""
    head = text[:keep]
    if keep < len(text) and not text[keep].isspace():
        space = head.rfind(" ")
        if space > 0 and keep - space <= max(20, keep // 5):
            head = head[:space]
    return head.rstrip(" ,;:.-")


def shorten(text: str, limit: int) -> str:
    """`text` escaped, cut with an ellipsis if needed so that it fits `limit` units."""
    escaped = escape(text)
    if units(escaped) <= limit:
        return escaped
    best = ELLIPSIS if limit >= 1 else ""
    low, high = 1, min(len(text), limit)
    while low <= high:  # the longest cut that still fits once escaped
        keep = (low + high) // 2
        candidate = escape(_cut(text, keep)) + ELLIPSIS
        if units(candidate) <= limit:
            best, low = candidate, keep + 1
        else:
            high = keep - 1
    return best


def fit_units(text: str, limit: int) -> str:
    """`text` as it is (no escaping), cut with an ellipsis if needed to fit `limit` units;
    never between the two halves of a character outside the BMP."""
    if units(text) <= limit:
        return text
    head = text.encode("utf-16-le")[: 2 * (limit - units(ELLIPSIS))]
    return head.decode("utf-16-le", errors="ignore") + ELLIPSIS


def embed_size(embed: discord.Embed) -> int:
    """What counts toward the 6000 units shared by a message's embeds."""
    parts = [embed.title or "", embed.description or "", embed.footer.text or ""]
    parts.append(embed.author.name or "")
    for field in embed.fields:
        parts += [field.name or "", field.value or ""]
    return sum(units(p) for p in parts)


def authors_line(authors: Sequence[str]) -> str:
    return wording.authors(authors) or "unknown"


def _date_line(paper: Paper) -> str:
    line = paper.published.date().isoformat()
    if paper.version > 1:
        line += f" (v{paper.version}: {paper.updated.date().isoformat()})"
    return line


def _links(paper: Paper) -> str:
    """`[PDF](…) · [HTML](…) · [Code](…)`: arXiv's links, then the first repository the
    paper names. A URL that could end the link early is left out."""
    links = wording.links(paper)
    return " · ".join(f"[{label}]({url})" for label, url in links if _SAFE_URL.match(url))


def _footer(paper: Paper, keywords: Sequence[str], number: int | None) -> str:
    footer = f"arXiv:{paper.id}v{paper.version}"
    if number is not None:
        footer = f"#{number} · {footer}"
    if len(keywords) > 1:
        footer += " · also matches " + ", ".join(f"“{k}”" for k in keywords[1:])
    return fit_units(neutralize_mentions(footer), FOOTER_LIMIT)


def paper_embed(
    paper: Paper,
    keywords: Sequence[str] = (),
    *,
    abstract_chars: int = DEFAULT_ABSTRACT_CHARS,
    revised: bool = False,
    number: int | None = None,
    label: str = "",
    why: Why | None = None,
) -> discord.Embed:
    """One paper: title linked to its abs page, authors, category, date, links (PDF, HTML,
    code), venue, comment, abstract shortened to `abstract_chars`. Never more than 6000
    units on its own."""
    title = paper.title or paper.id
    if revised:
        title = f"New version v{paper.version}: {title}"
    if label:
        title = f"{label} · {title}"
    embed = discord.Embed(title=shorten(title, TITLE_LIMIT), url=paper.abs_url, color=ARXIV_RED)
    _field(embed, "Authors", shorten(authors_line(paper.authors), AUTHORS_LIMIT))
    _field(embed, "Category", shorten(paper.primary_category, 64))
    _field(embed, "Submitted", _date_line(paper))
    _field(embed, "Links", _links(paper))
    _field(embed, "Venue", shorten(venue(paper) or "", VENUE_LIMIT))
    _field(embed, "Comment", shorten(paper.comment or "", COMMENT_LIMIT), inline=False)
    if why is not None:
        reason = explain.line(why).removeprefix("Why: ")
        _field(embed, "Why", shorten(reason, WHY_LIMIT), inline=False)
    embed.set_footer(text=_footer(paper, keywords, number))
    room = EMBEDS_TOTAL_LIMIT - embed_size(embed)
    budget = min(abstract_chars, DESCRIPTION_LIMIT, room)
    if budget > 0 and paper.summary:
        embed.description = shorten(paper.summary, budget)
    return embed


def _field(embed: discord.Embed, name: str, value: str, *, inline: bool = True) -> None:
    """The field, unless its value is blank: Discord refuses a message with an empty one
    (a paper without a primary category, a comment of spaces)."""
    if value.strip():
        embed.add_field(name=name, value=value, inline=inline)


Numbered = tuple[str, discord.Embed, int | None]
"""A paper's id, its embed, and the number the embed shows (None: not numbered)."""


def pack(
    content: str,
    embeds: Iterable[Numbered],
    *,
    continued: str = "",
    per_message: int = EMBEDS_PER_MESSAGE,
) -> list[Outgoing]:
    """`content` with as many embeds as fit, then further messages (headed `continued`) for
    the rest: at most `per_message` embeds (10 at most) and 6000 units of embeds a message,
    one paper never split."""
    messages: list[Outgoing] = []
    batch: list[Numbered] = []
    size = 0
    for numbered in embeds:
        n = embed_size(numbered[1])
        if batch and (len(batch) == per_message or size + n > EMBEDS_TOTAL_LIMIT):
            messages.append(_message(content, batch))
            content, batch, size = continued, [], 0
        batch.append(numbered)
        size += n
    if batch or content:
        messages.append(_message(content, batch))
    return messages


def _message(content: str, batch: Sequence[Numbered]) -> Outgoing:
    return Outgoing(
        content=content,
        embeds=tuple(embed for _, embed, _ in batch),
        paper_ids=tuple(paper_id for paper_id, _, _ in batch),
        numbers=tuple(n for _, _, n in batch if n is not None),
    )


def keyword_header(keyword: str, count: int) -> str:
    noun = "paper" if count == 1 else "papers"
    return f"📚 **New on arXiv for “{shorten(keyword, 200)}”** · {count} {noun}"


def render_digest(
    digest: Digest, *, abstract_chars: int = DEFAULT_ABSTRACT_CHARS, buttons: bool = False
) -> list[Outgoing]:
    """A header message per keyword, each followed by one embed per paper; papers in the
    digest's order, each in exactly one message. With `buttons`, each embed shows its number
    in the digest (`#3`) for the buttons below the message to name, and a message carries
    at most `PAPERS_WITH_BUTTONS` papers."""
    if not digest.items:
        followed = ", ".join(f"“{k}”" for k in digest.keywords)
        return [_message(shorten(f"No new papers today for {followed}.", CONTENT_LIMIT), [])]
    messages: list[Outgoing] = []
    numbers = itertools.count(1)
    per_message = PAPERS_WITH_BUTTONS if buttons else EMBEDS_PER_MESSAGE
    for keyword, items in digest.by_keyword():
        embeds = []
        for item in items:
            number = next(numbers) if buttons else None
            embed = paper_embed(
                item.paper,
                item.keywords,
                abstract_chars=abstract_chars,
                revised=item.revised,
                number=number,
                why=item.why,
            )
            embeds.append((item.paper.id, embed, number))
        messages += pack(keyword_header(keyword, len(items)), embeds, per_message=per_message)
    if digest.more:
        messages.append(_message(more_line(digest.more), []))
    return messages


def more_line(count: int) -> str:
    return f"{wording.more_papers(count)} `/papers recent` shows the latest for each keyword."


def render_reply(
    reply: Reply, *, abstract_chars: int = DEFAULT_ABSTRACT_CHARS, file_as_text: bool = False
) -> list[Outgoing]:
    """The reply's text escaped (at most 2000 units), its papers as embeds: after its label
    (`/papers top`'s votes), and numbered for their Remove buttons (`/papers saved`); with
    `file_as_text`, its file (one too large to attach) as code blocks."""
    labels = reply.labels or ("",) * len(reply.papers)
    embeds = []
    for n, (paper, label) in enumerate(zip(reply.papers, labels, strict=True), 1):
        number = n if reply.removable else None
        embed = paper_embed(paper, abstract_chars=abstract_chars, number=number, label=label)
        embeds.append((paper.id, embed, number))
    messages = pack(shorten(reply.text, CONTENT_LIMIT), embeds)
    if file_as_text and reply.attachment is not None:
        messages += file_messages(reply.attachment.content)
    return messages


FILE_MESSAGES = 10
"""Messages a file shown as code blocks takes at most."""


def file_messages(content: str) -> list[Outgoing]:
    fence = "```"
    room = CONTENT_LIMIT - 2 * len(fence) - 2
    shown = bibtex.shown(content, room, FILE_MESSAGES, lambda p: units(bibtex.unfenced(p)))
    out = [Outgoing(f"{fence}\n{bibtex.unfenced(p)}\n{fence}") for p in shown.pieces]
    if shown.left_out:
        out.append(Outgoing(f"{wording.and_more(shown.left_out)}, too many to show here."))
    return out


def render_weekly(
    post: WeeklyPost, *, abstract_chars: int = DEFAULT_ABSTRACT_CHARS, buttons: bool = False
) -> list[Outgoing]:
    """The week's papers: a header with the counts and the line for the papers nobody voted
    for, then each voted paper as an embed after its votes and saves (numbered for its
    buttons, `PAPERS_WITH_BUTTONS` a message)."""
    lines = [f"🗓️ **{shorten(post.title, 200)}**", escape(post.summary)]
    if post.unvoted:
        lines.append(escape(post.unvoted_line()))
    content = fit_units("\n".join(lines), CONTENT_LIMIT)  # about 700 units at most
    embeds = []
    for n, ranked in enumerate(post.ranked, 1):
        number = n if buttons else None
        embed = paper_embed(
            ranked.paper, abstract_chars=abstract_chars, number=number, label=ranked.label
        )
        embeds.append((ranked.paper.id, embed, number))
    per_message = PAPERS_WITH_BUTTONS if buttons else EMBEDS_PER_MESSAGE
    return pack(content, embeds, per_message=per_message)
