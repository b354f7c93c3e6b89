"""What each CLI command does, one module per command (cli.py parses the arguments and calls these;
tests call them directly)."""
