"""panels of the studio window."""
