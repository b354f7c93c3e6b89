"""`python -m dsocr_trace ...` runs the command line (for machines where the console script is not installed)."""

from dsocr_trace.cli import main

main()
