"""Discord, through discord.py: `app` (the client, `/papers`, the REST publisher), `buttons`
(votes and saves), `render` (embeds, mention-safe text, UTF-16 limits)."""
