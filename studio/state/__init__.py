"""Qt-free observable state. Widgets subscribe to these objects and redraw; engines never touch them."""
