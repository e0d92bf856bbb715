"""`python -m mlpace` (and `torchrun -m mlpace`) run the same CLI as the `mlpace` script."""

from mlpace.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
