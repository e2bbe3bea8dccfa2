import sys

from ternkit.cli import main

sys.exit(main())
