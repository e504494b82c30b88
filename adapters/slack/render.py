"""Digests and command replies as Slack Block Kit messages: pure functions, no I/O.

Every message fits Slack's limits (50 blocks, 3000 characters a section, 150 a header)
and a budget for its whole text; a long digest becomes more messages, and one paper is
never split across two. Everything that comes from arXiv or from a user is escaped, so
it can neither ping (`<!channel>`) nor forge a link.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from adapters.slack.buttons import paper_actions, remove_action
from bot import bibtex, explain
from bot.commands import Reply
from bot.links import venue
from bot.models import Digest, DigestItem, Paper
from bot.replies import Attachment
from bot.weekly import WeeklyPost
from bot.wording import and_more, authors, links

Block = dict[str, Any]

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_MESSAGE_CHARS = 12_000
"""Our own budget for the text of all blocks of one message: long messages stay readable."""
MAX_FALLBACK_CHARS = 4000
"""Slack's advice for the plain `text` of a message (it truncates beyond 40,000)."""

TITLE_CHARS = 300
AUTHORS_CHARS = 300
ABSTRACT_CHARS = 500
COMMENT_CHARS = 300
VENUE_CHARS = 80
KEYWORD_CHARS = 110
WHY_CHARS = 300
"""The "Why: …" line under a paper (`[signals] explain`), escaped."""

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_SAFE_URL = re.compile(r"^https?://[\w.:/%~+-]+$")


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """One `chat.postMessage` (or `respond`): blocks, the plain fallback, the papers it carries."""

    text: str
    blocks: tuple[Block, ...]
    paper_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Unit:
    """Blocks that must travel together in one message."""

    blocks: tuple[Block, ...]
    text: str
    paper_ids: tuple[str, ...] = ()
    heading: Block | None = None
    """Put in front when this unit opens a message in the middle of its group."""
    size: tuple[int, int, int] | None = None
    """`_size` of the blocks and text, when known already (a cached paper's)."""

    def opening(self) -> _Unit:
        return self if self.heading is None else self.led_by(self.heading)

    def led_by(self, block: Block) -> _Unit:
        """This unit after `block` (a header); a known size grows by the block's."""
        size = None if self.size is None else _add(self.size, (1, block_chars((block,)), 0))
        return _Unit((block, *self.blocks), self.text, self.paper_ids, size=size)

    def continuing(self, heading: Block) -> _Unit:
        """This unit, to be opened with `heading` if it starts a message."""
        return _Unit(self.blocks, self.text, self.paper_ids, heading, self.size)


# text ----------------------------------------------------------------------------------


def slack_len(text: str) -> int:
    """Length in UTF-16 code units: never less than Slack's own count."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    """Plain text made safe for mrkdwn: `&`, `<` and `>` become entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """What the user typed, from the `text` Slack sends (it escapes `&`, `<`, `>` too)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def fit(text: str, limit: int) -> str:
    """`text` escaped for mrkdwn and shortened to at most `limit` units, ending in "…",
    at a word boundary when one is near. Never cuts an entity in half."""
    return _shorten(text, limit, escaped=True)


def clip(text: str, limit: int) -> str:
    """Plain text (a header, a button) shortened like `fit`, without escaping."""
    return _shorten(text, limit, escaped=False)


def _shorten(text: str, limit: int, *, escaped: bool) -> str:
    whole = escape(text) if escaped else text
    size = slack_len(whole)
    if size <= limit:
        return whole
    # Escapes and astral characters only add units: with neither, slice instead of looping.
    one_unit_each = size == len(text)
    cut = text[: max(limit - 1, 0)] if one_unit_each else _cut(text, limit, escaped=escaped)
    head, space, _ = cut.rpartition(" ")
    if space and len(head) >= 0.8 * len(cut):
        cut = head
    return cut.rstrip() + "…"


def _cut(text: str, limit: int, *, escaped: bool) -> str:
    """The longest start of `text`, escaped if asked, that leaves a unit for the ellipsis."""
    kept: list[str] = []
    used = 1  # the ellipsis
    for ch in text[:limit]:  # every character takes at least one unit
        piece = _ESCAPES.get(ch, ch) if escaped else ch
        used += slack_len(piece)
        if used > limit:
            break
        kept.append(piece)
    return "".join(kept)


def link(url: str, label: str) -> str:
    """A mrkdwn link to `url` with an already escaped label; just the label if the URL
    holds anything that could break out of `<…|…>`."""
    if not _SAFE_URL.match(url):
        return label
    return f"<{url}|{label}>"


def pretty_day(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


# blocks --------------------------------------------------------------------------------


def mrkdwn(text: str) -> Block:
    """A mrkdwn text object. `verbatim` stops Slack from turning bare names into links
    or mentions on its own; the text is expected to be escaped already."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def section(text: str) -> Block:
    return {"type": "section", "text": mrkdwn(text)}


def header(text: str) -> Block:
    """A header block; plain text, so no escaping is needed, only the length limit."""
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, MAX_HEADER_CHARS)}}


def context(parts: Iterable[str]) -> Block:
    elements = [mrkdwn(p) for p in parts if p][:MAX_CONTEXT_ELEMENTS]
    return {"type": "context", "elements": elements}


def block_chars(blocks: Iterable[Block]) -> int:
    """Characters of text across blocks, as counted against MAX_MESSAGE_CHARS."""
    total = 0
    for block in blocks:
        texts = [block.get("text"), *block.get("elements", [])]
        total += sum(
            slack_len(t["text"])
            for t in texts
            if isinstance(t, dict) and isinstance(t.get("text"), str)
        )
    return total


# papers --------------------------------------------------------------------------------


def paper_title(paper: Paper) -> str:
    return f"*{link(paper.abs_url, fit(paper.title, TITLE_CHARS))}*"


def paper_meta(paper: Paper) -> str:
    """Category, date, links and venue: `cs.LG · 2026-05-01 · PDF · HTML · Code · ICLR 2025`
    (the code link and the venue when the paper names them)."""
    parts = [fit(paper.primary_category, 40), paper.published.date().isoformat()]
    if paper.version > 1:
        parts.append(f"v{paper.version} {paper.updated.date().isoformat()}")
    parts += [link(url, label) for label, url in links(paper)]
    where = venue(paper)
    if where:
        parts.append(fit(where, VENUE_CHARS))
    return " · ".join(parts)


def paper_blocks(item: DigestItem, *, buttons: bool = False) -> tuple[Block, ...]:
    """A digest entry: title, authors and abstract, a context line, then its buttons."""
    paper = item.paper
    title = paper_title(paper)
    if item.revised:
        title = f"New version v{paper.version}: {title}"
    body = [title, fit(authors(paper.authors), AUTHORS_CHARS)]
    if paper.summary:
        body.append(fit(paper.summary, ABSTRACT_CHARS))
    notes = [paper_meta(paper)]
    if paper.comment:
        notes.append(f"_{fit(paper.comment, COMMENT_CHARS)}_")
    if len(item.keywords) > 1:
        notes.append("Also matches: " + fit(", ".join(item.keywords[1:]), 2 * KEYWORD_CHARS))
    if item.why is not None:
        notes.append(fit(explain.line(item.why), WHY_CHARS))
    blocks = (section("\n".join(body)), context(notes))
    return (*blocks, paper_actions(paper)) if buttons else blocks


def compact_paper_block(paper: Paper, label: str = "") -> Block:
    """A command reply's entry: title (after its label, like a vote count), then authors,
    category, date and PDF on one line."""
    meta = fit(authors(paper.authors), AUTHORS_CHARS) + " · " + paper_meta(paper)
    title = f"{fit(label, 20)} {paper_title(paper)}" if label else paper_title(paper)
    return section(f"{title}\n{meta}")


def fallback_line(paper: Paper) -> str:
    return "• " + link(paper.abs_url, fit(paper.title, TITLE_CHARS))


# packing -------------------------------------------------------------------------------


def pack(units: Iterable[_Unit]) -> list[SlackMessage]:
    """Units into as few messages as the limits allow, in order, never splitting a unit."""
    messages: list[SlackMessage] = []
    current: list[_Unit] = []
    used = (0, 0, 0)
    for unit in units:
        if current and not _within(_add(used, _size(unit))):
            messages.append(_message(current))
            current, used = [], (0, 0, 0)
        if not current:
            unit = unit.opening()
        current.append(unit)
        used = _add(used, _size(unit))
    if current:
        messages.append(_message(current))
    return messages


def _size(unit: _Unit) -> tuple[int, int, int]:
    """Blocks, characters in blocks, characters of fallback text (with its newline)."""
    if unit.size is not None:
        return unit.size
    return len(unit.blocks), block_chars(unit.blocks), slack_len(unit.text) + 1


def _add(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    return a[0] + b[0], a[1] + b[1], a[2] + b[2]


def _within(size: tuple[int, int, int]) -> bool:
    blocks, chars, text = size
    return blocks <= MAX_BLOCKS and chars <= MAX_MESSAGE_CHARS and text <= MAX_FALLBACK_CHARS


def _message(units: Sequence[_Unit]) -> SlackMessage:
    return SlackMessage(
        text="\n".join(u.text for u in units),
        blocks=tuple(b for u in units for b in u.blocks),
        paper_ids=tuple(pid for u in units for pid in u.paper_ids),
    )


# digest --------------------------------------------------------------------------------


def render_digest(digest: Digest) -> list[SlackMessage]:
    """The top message (date, keywords, counts), then the papers for its thread."""
    return [top_message(digest), *thread_messages(digest)]


def top_message(digest: Digest) -> SlackMessage:
    groups = digest.by_keyword()
    total = len(digest.items)
    if not total:
        followed = fit(", ".join(digest.keywords), 1500)
        line = f"No new papers today for {followed}."
        return SlackMessage(line, (section(line),))
    noun = "paper" if total == 1 else "papers"
    lines = [f"• {fit(kw, KEYWORD_CHARS)}: {len(items)}" for kw, items in groups]
    blocks: list[Block] = [
        header(f"New on arXiv · {pretty_day(digest.day)}"),
        section(fit_lines([f"*{total} new {noun}* for this channel's keywords:", *lines])),
    ]
    quiet = [kw for kw in digest.keywords if not digest.count(kw)]
    notes = ["Papers are in the thread."] if total else []
    if quiet:
        notes.append("Nothing new for: " + fit(", ".join(quiet), 1500))
    if digest.more:
        notes.append(f"{and_more(digest.more)}: /papers recent shows the latest per keyword.")
    if notes:
        blocks.append(context(notes))
    counts = ", ".join(f"{kw} {len(items)}" for kw, items in groups)
    text = fit(f"New on arXiv, {digest.day.isoformat()}: {total} {noun} ({counts})", 1000)
    return SlackMessage(text, tuple(blocks))


def fit_lines(lines: Sequence[str], limit: int = MAX_SECTION_CHARS) -> str:
    """Whole lines (already escaped) while they fit, then "…"."""
    kept: list[str] = []
    used = 0
    for line in lines:
        used += slack_len(line) + 1
        if used > limit - 2:
            kept.append("…")
            break
        kept.append(line)
    return "\n".join(kept)


def thread_messages(digest: Digest, *, buttons: bool = False) -> list[SlackMessage]:
    """The papers grouped by keyword. A group that goes on in a new message gets its
    header again, so no message starts with a paper nobody can place."""
    units: list[_Unit] = []
    for keyword, items in digest.by_keyword():
        label = f"{keyword} · {len(items)} new"
        continued = header(f"{keyword} (continued)")
        for i, item in enumerate(items):
            unit = _paper_unit(item, buttons)
            units.append(unit.led_by(header(label)) if i == 0 else unit.continuing(continued))
    return pack(units)


@functools.lru_cache(maxsize=4096)
def _paper_unit(item: DigestItem, buttons: bool) -> _Unit:
    """One paper's blocks and text, rendered once per run however many channels get it: the
    item (paper, the channel's matched keywords, revised) is the key, so channels share a
    render only when it is the same. The blocks are shared: nothing may change them."""
    unit = _Unit(paper_blocks(item, buttons=buttons), fallback_line(item.paper), (item.paper.id,))
    return replace(unit, size=_size(unit))


# replies -------------------------------------------------------------------------------


def render_reply(reply: Reply) -> list[SlackMessage]:
    """A command's answer: its text, then its papers listed compactly, then its file (one
    that could not be sent as a file) as code blocks."""
    text = fit(reply.text, MAX_SECTION_CHARS - 20)
    if not reply.ok:
        text = f":warning: {text}"
    units = [_Unit((section(text),), text)]
    labels = reply.labels or ("",) * len(reply.papers)
    for paper, label in zip(reply.papers, labels, strict=True):
        blocks: tuple[Block, ...] = (compact_paper_block(paper, label),)
        if reply.removable:
            blocks = (*blocks, remove_action(paper))
        units.append(_Unit(blocks, fallback_line(paper), (paper.id,)))
    if reply.attachment is not None:
        units += _file_units(reply.attachment)
    return pack(units)


FILE_SECTIONS = 14
"""Code blocks a file shown as text takes at most: with the reply's text they pack into five
messages (12,000 characters each), as many answers as a `response_url` takes."""


def _file_units(attachment: Attachment) -> list[_Unit]:
    fence = "```"
    shown = bibtex.shown(
        attachment.content,
        MAX_SECTION_CHARS - 2 * len(fence) - 2,
        FILE_SECTIONS,
        lambda piece: slack_len(escape(bibtex.unfenced(piece))),
    )
    code = [f"{fence}\n{escape(bibtex.unfenced(piece))}\n{fence}" for piece in shown.pieces]
    units = [_Unit((section(text),), attachment.filename) for text in code]
    if shown.left_out:
        note = (
            f"{and_more(shown.left_out)}: for the whole file, ask whoever runs the bot to "
            "grant it Slack's files:write and im:write scopes."
        )
        units.append(_Unit((section(escape(note)),), note))
    return units


# the week's papers ---------------------------------------------------------------------


def weekly_messages(post: WeeklyPost, *, buttons: bool = False) -> list[SlackMessage]:
    """The week's papers: a header and the counts, each voted paper with its votes and saves
    (and its buttons), then one line for the papers nobody voted for."""
    summary = fit(post.summary, MAX_SECTION_CHARS)
    units = [_Unit((header(post.title), section(summary)), f"{post.title}: {summary}")]
    for ranked in post.ranked:
        blocks: tuple[Block, ...] = (compact_paper_block(ranked.paper, ranked.label),)
        if buttons:
            blocks = (*blocks, paper_actions(ranked.paper, ranked.up))
        units.append(_Unit(blocks, fallback_line(ranked.paper), (ranked.paper.id,)))
    if post.unvoted:
        line = fit(post.unvoted_line(), MAX_SECTION_CHARS)
        units.append(_Unit((context([line]),), line))
    return pack(units)
