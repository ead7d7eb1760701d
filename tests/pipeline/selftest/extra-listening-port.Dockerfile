# Broken on purpose for tests/pipeline/test_selftest.py: a second server listens on port 9999.
# Caught by tests/infra test_listening_ports_are_exactly_the_declared_ones. The app is still
# exec'd as PID 1, so only the extra listener differs from the real image.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
ENTRYPOINT ["sh", "-c", "python -m http.server 9999 --bind 0.0.0.0 & exec python -m src.entrypoint \"$@\"", "sh"]
CMD ["app"]
