"""blastscope.reports."""
