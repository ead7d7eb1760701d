#!/bin/sh
# Entrypoint of the PostgreSQL stand-in: the upstream postgres image's contract, trimmed.
# usage: docker-entrypoint.sh [postgres] [-c name=value ...]
#   env: POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER,
#        POSTGRES_DB, POSTGRES_INITDB_ARGS, PGDATA; /docker-entrypoint-initdb.d/*.sql|*.sh
#   Each of the four POSTGRES_* may instead come from a file named by <NAME>_FILE (Docker and
#   Compose secrets), as upstream.
set -eu

die() {
  echo "docker-entrypoint: $*" >&2
  exit 1
}

# Options alone mean "the server with these options", as upstream (`command: -c fsync=off`).
case "${1:-}" in
  -*) set -- postgres "$@" ;;
esac

# Informational flags only print and exit: no data directory work for them.
wants_information_only() {
  for argument in "$@"; do
    case "$argument" in
      -V | --version | '-?' | --help | --describe-config | -C) return 0 ;;
    esac
  done
  return 1
}

if [ "${1:-}" != postgres ] || wants_information_only "$@"; then
  exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
  # A fresh named volume or a tmpfs (root-owned, 1777) must belong to postgres before initdb.
  mkdir -p "$PGDATA" /var/run/postgresql
  find "$PGDATA" /var/run/postgresql ! -user postgres -exec chown postgres:postgres '{}' +
  chmod 0700 "$PGDATA"
  chmod 3777 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

# <NAME>_FILE names a file holding NAME's value. The value stays a shell variable of this
# script (never exported), and the server is started without it in its environment.
file_env() {
  name=$1
  eval "value=\${$name:-}"
  eval "file=\${${name}_FILE:-}"
  if [ -n "$value" ] && [ -n "$file" ]; then
    die "both $name and ${name}_FILE are set; set one of them."
  fi
  if [ -n "$file" ]; then
    [ -r "$file" ] || die "${name}_FILE=$file cannot be read; mount the secret file there."
    value=$(cat "$file")
  fi
  # unset drops the export too: set again, the variable is this script's alone.
  unset "$name" "${name}_FILE"
  eval "$name=\$value"
}

for variable in POSTGRES_PASSWORD POSTGRES_USER POSTGRES_DB POSTGRES_INITDB_ARGS; do
  file_env "$variable"
done

POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
POSTGRES_HOST_AUTH_METHOD=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}

# Unix-socket connections inside the container are trusted, as upstream; every TCP
# connection, loopback included, must present the password.
run_initdb() {
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options, split on purpose
  initdb \
    --username="$POSTGRES_USER" \
    --auth-local=trust \
    --auth-host="$POSTGRES_HOST_AUTH_METHOD" \
    ${POSTGRES_INITDB_ARGS:-} \
    "$@"
}

initialize_cluster() {
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
    die "POSTGRES_PASSWORD is not set; set it (or POSTGRES_HOST_AUTH_METHOD=trust for throwaway databases), then start the container again."
  fi

  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    printf '%s\n' "$POSTGRES_PASSWORD" | run_initdb --pwfile=/dev/stdin
  else
    run_initdb
  fi
  printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  # The setup server listens on a private socket only, so neither clients nor a
  # `pg_isready` healthcheck mistake it for the real server.
  setup_socket_directory=$(mktemp -d)
  pg_ctl --pgdata="$PGDATA" --wait --silent \
    --options="-c listen_addresses='' -c unix_socket_directories='$setup_socket_directory'" start

  # initdb makes only the `postgres` database; any other name is created here, as upstream.
  if [ "$POSTGRES_DB" != postgres ]; then
    psql --host="$setup_socket_directory" --username="$POSTGRES_USER" --dbname=postgres \
      --no-password --quiet -v ON_ERROR_STOP=1 --set=database="$POSTGRES_DB" <<'SQL'
CREATE DATABASE :"database";
SQL
  fi
  for init_file in /docker-entrypoint-initdb.d/*; do
    case "$init_file" in
      *.sql)
        echo "docker-entrypoint: running $init_file"
        psql --host="$setup_socket_directory" --username="$POSTGRES_USER" --dbname="$POSTGRES_DB" \
          --no-password --quiet -v ON_ERROR_STOP=1 --file="$init_file"
        ;;
      *.sh)
        echo "docker-entrypoint: running $init_file"
        PGHOST=$setup_socket_directory sh "$init_file"
        ;;
    esac
  done

  pg_ctl --pgdata="$PGDATA" --wait --silent --mode=fast stop
  rmdir "$setup_socket_directory"
  echo "docker-entrypoint: database cluster initialized; starting the server."
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initialize_cluster
fi

exec "$@"
