"""`python -m gitopsd.reference [CHECKOUT]` (`make docs`): rewrite the generated documents."""

from __future__ import annotations

import sys
from pathlib import Path

from gitopsd.reference import build


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for relative in build.write(root):
        print(f"wrote {relative}")


if __name__ == "__main__":
    main()
