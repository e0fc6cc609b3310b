"""`python -m se_keras` runs the `se-keras` command line."""

import sys

from se_keras.cli import main

if __name__ == "__main__":
    sys.exit(main())
