"""canteen-watch: smart-canteen food-safety monitoring."""

__version__ = "0.1.0"
