"""`python -m clients.bench`: the serving benchmark (clients.bench.serving_bench)."""

import sys

from clients.bench.serving_bench import main

sys.exit(main())
