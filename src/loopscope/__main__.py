"""``python -m loopscope``: the same as the ``loopscope`` command."""

import sys

from loopscope.cli import main

sys.exit(main())
