"""`python -m gdkit ...` is the `gdkit` command."""

if __name__ == "__main__":
    from gdkit.experiments.cli import main

    raise SystemExit(main())
