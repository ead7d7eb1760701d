"""The ports the two services listen on, in one place for the entrypoint and the healthcheck.

Kept free of third-party imports: the image's HEALTHCHECK imports this module every few
seconds and must stay fast.
"""

APP_PORT = 8000
CALLBACK_PORT = 8182

SERVICE_PORTS: dict[str, int] = {"app": APP_PORT, "callback": CALLBACK_PORT}
