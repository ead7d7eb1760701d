# Broken on purpose for tests/pipeline/test_selftest.py: the image's appuser account is UID
# and GID 1001 while its files and the container still run as 1000. Caught by the check that
# appuser is 1000:1000, read from the container's own /etc/passwd and /etc/group.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
USER root
RUN ["python", "-c", "import re; [open(p, 'w').write(re.sub(r'^(appuser:[^:]*):1000:1000:', r'\\1:1001:1001:', t, flags=re.M) if p.endswith('passwd') else re.sub(r'^(appuser:[^:]*):1000:', r'\\1:1001:', t, flags=re.M)) for p, t in [(p, open(p).read()) for p in ('/etc/passwd', '/etc/group')]]"]
USER 1000:1000
