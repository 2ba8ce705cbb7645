"""`python -m bxthre3` is the `bxthre3` command."""

import sys

from .cli import main

sys.exit(main())
