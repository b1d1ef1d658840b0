"""Write the shipped Grafana dashboards (deploy/grafana/dashboards/*.json) from their sources:
the Operations panels' PromQL and the Spend panels' metering/sql files.

    python -m deploy.grafana.build_dashboards          # write them
    python -m deploy.grafana.build_dashboards --check  # exit 1 if a committed file differs
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from deploy.grafana import operations, spend
from deploy.grafana.panels import Json

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DASHBOARDS: dict[str, Callable[[], Json]] = {"operations.json": operations.build, "spend.json": spend.build}


def render(board: Json) -> str:
    """A dashboard as the committed file has it."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """Every dashboard's file name and text."""
    return {name: render(build()) for name, build in DASHBOARDS.items()}


def stale(directory: Path = DASHBOARD_DIR) -> list[str]:
    """The dashboard files of `directory` that are missing or differ from the generator's output."""
    out = []
    for name, text in rendered().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.grafana.build_dashboards", description="Write the shipped Grafana dashboards."
    )
    parser.add_argument("--check", action="store_true", help="only compare the committed files with the output")
    parser.add_argument("--dir", type=Path, default=DASHBOARD_DIR, help="where the dashboards are (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.check:
        differing = stale(args.dir)
        for name in differing:
            print(f"{args.dir / name} is not what the generator writes: run python -m deploy.grafana.build_dashboards")
        return 1 if differing else 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (args.dir / name).write_text(text, encoding="utf-8")
        print(f"wrote {args.dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
