"""blastscope.evaluation."""
