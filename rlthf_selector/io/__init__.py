"""Reading and writing preference pairs."""
