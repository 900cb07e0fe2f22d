"""Qt-free, torch-free foundations: value types, requests, task context, errors, paths, settings."""
