"""`python -m gitopsd` runs the command line."""

from gitopsd.cli.main import main

main()
