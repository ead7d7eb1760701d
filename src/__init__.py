"""Dashtam: the API (`src.main:app`) and the OAuth callback receiver (`src.callback:app`)."""

__version__ = "0.1.0"
