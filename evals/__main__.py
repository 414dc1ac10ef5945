"""`python -m evals` runs the eval command line."""

from evals.cli import main

if __name__ == "__main__":
    main()
