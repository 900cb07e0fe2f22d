"""dialogs of the studio window."""
