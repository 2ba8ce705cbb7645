"""`python -m bxthre3.executor ...`: the executor child's command line, as the host spawns it."""

import sys

from bxthre3.executor.child import main

sys.exit(main())
