# Broken on purpose for tests/pipeline/test_selftest.py: the healthcheck speaks https to a
# server that serves plain http (the ci stack has no TLS), so the container never becomes
# healthy. Caught by the boot health gate (`docker compose up --wait`) before any check runs.
# The start period outlasts the app's startup, so the failures that count are TLS errors
# from a listening server, not a refused connection from one still starting.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
HEALTHCHECK --interval=1s --timeout=3s --start-period=20s --start-interval=1s --retries=3 \
  CMD ["python", "-c", "import urllib.request, ssl; urllib.request.urlopen('https://127.0.0.1:8000/health', context=ssl._create_unverified_context(), timeout=2)"]
