"""Databricks job entry point: parse the job parameters and run one day.

Kept thin on purpose: all logic lives in the `playtest_spark` package.
"""

import sys

from playtest_spark.entry import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
