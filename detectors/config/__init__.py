"""Shipped configuration files of the pure-Python detectors (package data)."""
