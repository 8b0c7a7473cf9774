"""``python -m stand_ins.graph_emulator [--tenant FILE] [--host H] [--port P] ...``."""

from __future__ import annotations

import argparse
from pathlib import Path

from stand_ins.graph_emulator.runner import run_emulator


def main() -> None:
    parser = argparse.ArgumentParser(description="Local Microsoft Graph PIM emulator")
    parser.add_argument("--tenant", type=Path, default=None, help="tenant fixture YAML")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--ca-path", type=Path, default=None, help="where to write the CA PEM")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per Graph request")
    options = parser.parse_args()
    run_emulator(
        options.tenant,
        options.host,
        options.port,
        options.ca_path,
        faults={"latency": options.latency},
    )


if __name__ == "__main__":
    main()
