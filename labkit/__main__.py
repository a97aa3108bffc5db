"""Command line: ``python -m labkit {doctor,prepare,build,grade}``."""

from __future__ import annotations

import sys

USAGE = """usage: python -m labkit COMMAND [options]

commands:
  doctor    check this machine: versions, device, 4-bit support, offline model cache, data
  prepare   convert the packaged SmolLM2 model into the offline cache (done once, ~20 s)
  build     rebuild the learner notebooks in labs/ from labs/solutions/ (--check: fail if stale)
  grade     grade learner notebooks without touching them (PATH... [--json F] [--csv F])
"""


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the sub-command and return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "doctor":
        from .doctor import doctor_main

        return doctor_main(rest)
    if command == "prepare":
        from .models import prepare_offline_model

        print(f"offline model ready at {prepare_offline_model(force='--force' in rest)}")
        return 0
    if command == "build":
        from .notebooks import build_main

        return build_main(rest)
    if command == "grade":
        from .grading import grade_main

        return grade_main(rest)
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
