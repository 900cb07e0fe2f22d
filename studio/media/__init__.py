"""Image and video I/O, generation metadata and the gallery index."""
