"""blastscope.transforms."""
