"""blastscope.estimators."""
