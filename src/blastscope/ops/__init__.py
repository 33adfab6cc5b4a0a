"""blastscope.ops."""
