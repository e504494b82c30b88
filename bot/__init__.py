"""papers-bot's core: what every platform shares.

Where things are (README.md, "Code layout", has the whole map): arXiv in `arxiv_source`,
`listing`, `listing_guard` and `oai`; matching in `keywords`, `matching` and `ranking`; a
digest run in `digest` -> `fetching` -> `plan` -> `delivery`; the commands in `commands`
and `votes`; what outputs implement in `publishing`; state in the `state` package (its
keys in `state.keys`, its Lua in `state.scripts`); `jobs` composes them for the CLI.
"""

__version__ = "0.1.0"
