import sys

from specsearch.cli.main import main

sys.exit(main())
