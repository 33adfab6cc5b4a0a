"""``python -m blastscope``: the same command line as the ``blastscope`` console script."""
from blastscope.cli import main

if __name__ == "__main__":
    main(prog_name="blastscope")
