"""Web access log sources: the log formats and their parser, and the synthetic site."""
