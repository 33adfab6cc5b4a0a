"""blastscope.engine."""
