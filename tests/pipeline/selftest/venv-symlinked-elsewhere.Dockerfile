# The virtual environment moved to /opt/venv behind an absolute symlink /app/.venv, with a
# dev-only package (pytest) in it: read in the inspector's own root the link leads nowhere
# and the dev-package check saw nothing; read in the container's root it must find pytest.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
USER root
RUN ["python", "-c", "import glob, os, shutil; shutil.move('/app/.venv', '/opt/venv'); os.symlink('/opt/venv', '/app/.venv'); site = glob.glob('/opt/venv/lib/python*/site-packages')[0]; os.makedirs(site + '/pytest-8.3.0.dist-info'); open(site + '/pytest-8.3.0.dist-info/METADATA', 'w').write('Metadata-Version: 2.1\\nName: pytest\\nVersion: 8.3.0\\n')"]
USER appuser
