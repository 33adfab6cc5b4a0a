"""`blastscope bench` (filled in by the performance issue)."""
