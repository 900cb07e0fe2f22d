"""Studio: a local desktop studio for image and video AI."""
