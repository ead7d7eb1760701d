# Broken on purpose for tests/pipeline/test_selftest.py: a live-looking AWS access key in the
# image's ENV (AWS's own documented example key, assembled at build time so this file holds
# nothing shaped like one). Caught by the check that reads the image's configuration for
# values shaped like credentials.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
ARG KEY_TAIL=IOSFODNN7EXAMPLE
ENV AWS_ACCESS_KEY_ID=AKIA${KEY_TAIL}
