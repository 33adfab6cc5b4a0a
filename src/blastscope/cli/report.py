"""`blastscope report` and `compare` (filled in by the reports issue)."""
