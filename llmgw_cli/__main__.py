"""`python -m llmgw_cli ...`: the same as the `llmgw` command."""

from llmgw_cli.main import main

if __name__ == "__main__":
    main()
