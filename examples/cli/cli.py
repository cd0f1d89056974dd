"""A command-line job with one id for the whole run, in every thread it starts.

``python cli.py report-1.csv report-2.csv``; set REQUEST_ID to use a caller's id.
"""

import argparse
import logging
import os

from correlation import bound_request_id
from correlation.logging import RequestIdFilter
from correlation.threads import ThreadPoolExecutor

logger = logging.getLogger("export")


def export(path: str) -> None:
    logger.info("exported %s", path)


def main() -> None:
    parser = argparse.ArgumentParser(description="Export reports in parallel.")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args()
    # The caller's id if it passes the rules, else a new one: checked like a header.
    with bound_request_id(os.environ.get("REQUEST_ID")):
        logger.info("run started")
        # This pool carries the id into its threads; a plain one would lose it.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(export, args.paths))
        logger.info("run finished")


if __name__ == "__main__":
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("%(levelname)s [%(request_id)s] %(threadName)s: %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    main()
