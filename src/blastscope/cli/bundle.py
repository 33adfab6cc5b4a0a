"""`blastscope export` and `predict` (filled in by the bundle issue)."""
