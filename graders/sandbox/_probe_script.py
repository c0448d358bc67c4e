"""The probe's run (standalone, like every sandboxed script): it proves the sandbox started and
handed back its result; what it reports lets the caller check the isolation it asked for."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    arguments = parser.parse_args()
    sys.stdin.readline()
    report = {"environment": sorted(os.environ), "input": sorted(os.listdir(arguments.input))}
    with socket.socket(fileno=arguments.control_fd) as control:
        control.sendall(json.dumps(report).encode() + b"\n")


if __name__ == "__main__":
    main()
