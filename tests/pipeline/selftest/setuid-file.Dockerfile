# Broken on purpose for tests/pipeline/test_selftest_policy.py: a setuid copy of the
# interpreter, outside the program folders. Caught by the policy control no-setuid-files.
ARG BASE_IMAGE=dashtam/callback:latest
FROM ${BASE_IMAGE}
USER root
RUN ["python", "-c", "import os, shutil, sys; os.makedirs('/opt', exist_ok=True); shutil.copy(os.path.realpath(sys.executable), '/opt/selftest-suid'); os.chmod('/opt/selftest-suid', 0o4755)"]
USER appuser
