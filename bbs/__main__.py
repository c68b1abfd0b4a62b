import sys

from bbs.cli import main

sys.exit(main())
