# Broken on purpose for tests/pipeline/test_selftest_policy.py: a second process listens on
# UDP port 9999 beside the app (exec'd as PID 1, so nothing else differs). Caught by the
# policy control listening-sockets, which reads UDP as well as TCP.
ARG BASE_IMAGE=dashtam/production:latest
FROM ${BASE_IMAGE}
ENTRYPOINT ["python", "-c", "import os, subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((\"0.0.0.0\", 9999)); time.sleep(1e9)']); os.execvp(sys.executable, [sys.executable, '-m', 'src.entrypoint', *sys.argv[1:]])"]
CMD ["app"]
