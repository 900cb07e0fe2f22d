"""widgets of the studio window."""
