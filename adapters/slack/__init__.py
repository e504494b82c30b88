"""Slack, through slack-bolt and slack-sdk: `app` (the bolt app, `/papers`, the publisher),
`acks` (acks slash commands before bolt's middlewares), `files` (uploads to a user's direct
messages), `buttons` (votes and saves), `render` (Block Kit and mrkdwn escaping)."""
