"""The probe's run (standalone, like every sandboxed script): it proves the sandbox started and
handed back its result; what it reports lets the caller check the isolation it asked for."""

from __future__ import annotations

import argparse
import json
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--result-fd", type=int, required=True)
    arguments = parser.parse_args()
    sys.stdin.readline()
    report = {"environment": sorted(os.environ), "input": sorted(os.listdir(arguments.input))}
    with os.fdopen(arguments.result_fd, "w", encoding="utf-8") as result:
        json.dump(report, result)


if __name__ == "__main__":
    main()
