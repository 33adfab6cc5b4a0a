"""blastscope.data."""
