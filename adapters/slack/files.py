"""A reply's file (`/papers saved bibtex`) sent to the user's direct messages with the bot.

A slash command's answer (its `response_url`) carries no file, and a file shared in the
channel would show everyone the user's saved papers: the file goes to the conversation
between the user and the bot (`conversations.open`, scope `im:write`), uploaded with
`files_upload_v2` (`files.getUploadURLExternal`, the upload, `files.completeUploadExternal`;
scope `files:write`). When Slack refuses (a scope missing, uploads disabled) the reply keeps
its file, and `render_reply` shows it as code blocks instead.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.replies import Reply

log = logging.getLogger(__name__)

SENT = "Sent to your direct messages with papers-bot as {filename}."


async def send_file(client: AsyncWebClient, user: str, reply: Reply) -> Reply:
    """The reply to answer with: without its file, saying where it went, once Slack took
    it; as it was when it didn't."""
    attachment = reply.attachment
    if attachment is None or not user:
        return reply
    try:
        opened = await client.conversations_open(users=user)
        channel = str((opened.get("channel") or {}).get("id") or "")
        await client.files_upload_v2(
            channel=channel,
            content=attachment.content.encode(),
            filename=attachment.filename,
            title=attachment.filename,
        )
    except SlackApiError as err:
        error = str(err.response.get("error") or "") if err.response is not None else ""
        log.warning("slack_file_refused user=%s error=%s", user, error or "unknown")
        return reply
    except (SlackClientError, aiohttp.ClientError, TimeoutError) as err:
        log.warning("slack_file_failed user=%s error=%s", user, type(err).__name__)
        return reply
    log.info("slack_file_sent user=%s bytes=%d", user, len(attachment.content.encode()))
    sent = SENT.format(filename=attachment.filename)
    return replace(reply, text=f"{reply.text} {sent}", attachment=None)
