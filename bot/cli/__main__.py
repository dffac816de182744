"""`python -m bot.cli`: the same command tree as `bot`."""

from bot.cli import main

main()
