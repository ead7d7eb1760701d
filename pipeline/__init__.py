"""Dashtam's container build-and-verification pipeline: the work behind noxfile.py."""
