"""blastscope.serve."""
