"""Placeholder until the demo lands: ``make demo`` says what is missing and fails."""

import sys

if __name__ == '__main__':
    sys.exit('make demo: the demo (issue 5) is not built yet; `make test` works.')
