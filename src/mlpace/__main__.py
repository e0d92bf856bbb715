"""`python -m mlpace` (and `torchrun -m mlpace`) run the same CLI as the `mlpace` script."""

import sys

try:
    from mlpace.cli import main
except KeyboardInterrupt:       # Ctrl-C while Python is still loading mlpace: no traceback
    print("error: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

if __name__ == "__main__":
    raise SystemExit(main())
