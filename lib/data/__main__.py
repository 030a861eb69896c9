"""``python -m lib.data fetch [names...]``: fetch, verify and cache the data sets."""
import sys

from lib.data.datasets import main

sys.exit(main())
