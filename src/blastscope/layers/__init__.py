"""blastscope.layers."""
