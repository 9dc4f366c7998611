"""`python -m engine` is the `ige` command."""
import sys

from .cli import main

sys.exit(main())
