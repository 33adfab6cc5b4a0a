"""`blastscope serve` (web service; optional extra)."""
