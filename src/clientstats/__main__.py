"""`python -m clientstats` runs the command line."""

from clientstats.cli import main

main()
