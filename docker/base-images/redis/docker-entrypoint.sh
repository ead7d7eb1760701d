#!/bin/sh
# Entrypoint of the Redis stand-in: the upstream redis image's contract, trimmed.
# usage: docker-entrypoint.sh [redis-server] [/path/to/redis.conf] [--option value ...]
set -eu

# Options or a config file alone mean "redis-server with these", as upstream
# (`command: --requirepass X --appendonly yes`).
case "${1:-}" in
  -* | *.conf) set -- redis-server "$@" ;;
esac

if [ "${1:-}" != redis-server ]; then
  exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
  # A fresh named volume or a bind mount must belong to redis before it writes there.
  find . ! -user redis -exec chown redis:redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi

# Upstream builds Redis with protected mode off: in a container the port is reached from other
# containers, not from an untrusted host network. Debian's build keeps it on, so say it here,
# right after the config file (if any) so the caller's own options still win.
shift
config_file=
case "${1:-}" in
  *.conf)
    config_file=$1
    shift
    ;;
esac
if [ -n "$config_file" ] && grep -Eq '^[[:space:]]*protected-mode[[:space:]]' "$config_file"; then
  set -- redis-server "$config_file" "$@"
elif [ -n "$config_file" ]; then
  set -- redis-server "$config_file" --protected-mode no "$@"
else
  set -- redis-server --protected-mode no "$@"
fi

# Files Redis writes (RDB, AOF) private to the redis user unless the caller chose a umask,
# as upstream.
if [ "$(umask)" = 0022 ]; then
  umask 0077
fi

exec "$@"
