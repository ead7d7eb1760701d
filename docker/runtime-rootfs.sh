#!/bin/sh
# The runtime image's root filesystem, cut out of the Python base image it runs in (as root,
# in a stage FROM that image): nothing ships but what the app runs on - no shell, no
# coreutils, no apt, dpkg, perl or bash, no package caches. The checks read the running
# container from outside (pipeline/inspector.py); the healthcheck and entrypoint are Python.
#
#   runtime-rootfs.sh base DESTINATION APP_UID APP_GID
#       the interpreter and its standard library (no bytecode: the image compiles what the
#       app imports), the shared libraries they load, the TLS trust store, and two
#       accounts: root and appuser.
#   runtime-rootfs.sh libraries DESTINATION VENV BASE
#       the shared libraries VENV's compiled packages load that BASE (a `base` result)
#       lacks.
#
# Either step stops the build when a library something loads is missing from the Python
# image. Two steps, so a dependency change re-runs only the second, quick one.
set -eu

usage() {
  echo "usage: runtime-rootfs.sh base DESTINATION APP_UID APP_GID" >&2
  echo "       runtime-rootfs.sh libraries DESTINATION VENV BASE" >&2
  exit 2
}

# Copy a path to the same place under DESTINATION, through its real directory, so the
# merged-/usr symlinks (/lib -> usr/lib, ...) keep resolving as in the base image.
copy() {
  source_path=$1
  directory=$(readlink -f "$(dirname "$source_path")")
  mkdir -p "$destination$directory"
  cp -L --preserve=mode "$source_path" "$destination$directory/$(basename "$source_path")"
}

# The shared libraries the given ELF files load, found the way the loader finds them
# (ldd), the loader included; one path per line.
libraries_of() {
  for object in "$@"; do
    ldd "$object" 2>/dev/null | awk '/=> \// { print $3 } /^\t\// { print $1 }'
  done | sort -u
}

# A library the image lacks would only fail at import time, in a running container: stop
# the build here instead, naming the file that needs it and the library.
require_libraries_of() {
  missing=$(for object in "$@"; do
    ldd "$object" 2>/dev/null | awk -v object="$object" '/not found/ { print object ": " $1 }'
  done)
  if [ -n "$missing" ]; then
    echo "runtime-rootfs: shared libraries missing from the Python image:" >&2
    echo "$missing" >&2
    echo "runtime-rootfs: install them (apt-get) in docker/Dockerfile's runtime-root stage, before this step." >&2
    exit 1
  fi
}

base() {
  app_uid=$1
  app_gid=$2
  python=$(readlink -f "$(command -v python3)")
  stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')
  platstdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_path("platstdlib"))')

  # The directory skeleton; /bin, /lib, /lib64 and /sbin stay symlinks into /usr where the
  # base image has them so.
  for link in /bin /lib /lib64 /sbin; do
    if [ -L "$link" ]; then
      mkdir -p "$destination$(readlink -f "$link")"
      cp -P "$link" "$destination$link"
    fi
  done
  install -d -m 0755 "$destination/etc" "$destination/usr/bin" "$destination/run" "$destination/var"
  install -d -m 0700 "$destination/root"
  install -d -m 1777 "$destination/tmp"
  install -d -m 0755 -o "$app_uid" -g "$app_gid" "$destination/app"

  # The interpreter, under every name a venv's pyvenv.cfg and shebangs can point at.
  copy "$python"
  for name in python3 python "$(basename "$python")"; do
    found=$(command -v "$name" || true)
    if [ -n "$found" ] && [ "$(readlink -f "$found")" = "$python" ] && [ "$found" != "$python" ]; then
      mkdir -p "$destination$(dirname "$found")"
      ln -sf "$python" "$destination$found"
    fi
  done

  # The standard library without its test suite, GUI and bootstrap-installer parts, and
  # without bytecode: the image compiles exactly what the app imports (runtime-check.py).
  mkdir -p "$destination$stdlib"
  (cd "$stdlib" && tar -c \
    --exclude=./test --exclude=./idlelib --exclude=./tkinter --exclude=./turtledemo \
    --exclude=./ensurepip --exclude='./lib-dynload/_test*' --exclude='./lib-dynload/xx*' \
    --exclude='./lib-dynload/_xxtestfuzz*' --exclude=./site-packages --exclude=./dist-packages \
    --exclude=__pycache__ \
    .) | tar -x -C "$destination$stdlib"
  if [ "$platstdlib" != "$stdlib" ] && [ -d "$platstdlib" ]; then
    mkdir -p "$destination$platstdlib"
    cp -a "$platstdlib/." "$destination$platstdlib/"
  fi
  # Debian's interpreter imports sitecustomize from /etc/python3.X (a symlink from the stdlib).
  version_dir=$(basename "$stdlib")
  if [ -d "/etc/$version_dir" ]; then cp -a "/etc/$version_dir" "$destination/etc/"; fi

  # shellcheck disable=SC2046,SC2086 # one path per word, none with spaces
  set -- "$python" $(find "$destination$stdlib" -name '*.so*' -type f)
  require_libraries_of "$@"
  libraries_of "$@" | while read -r library; do copy "$library"; done

  # What is loaded with dlopen, which no ELF file names (so ldd cannot see it):
  # - libgcc_s: glibc loads it to unwind a thread that exits or is cancelled; without it
  #   such a thread aborts the process.
  # - OpenSSL's provider modules (ossl-modules): the default provider is built into
  #   libcrypto; the others (legacy, fips) load only when a configuration asks for them.
  gcc_s=$(ldconfig -p 2>/dev/null | awk '/libgcc_s\.so\.1 / { print $NF; exit }')
  [ -n "$gcc_s" ] || { echo "runtime-rootfs: libgcc_s.so.1 is missing from the Python image" >&2; exit 1; }
  copy "$gcc_s"
  modules=$(find /usr/lib /usr/local/lib -maxdepth 3 -type d -name ossl-modules 2>/dev/null | head -n 1)
  if [ -n "$modules" ]; then
    require_libraries_of "$modules"/*.so
    mkdir -p "$destination$modules"
    cp -a "$modules/." "$destination$modules/"
  fi

  # What the libraries read: the loader's cache (python:3.13-slim keeps libpython in
  # /usr/local/lib), name service switch, TLS trust store and OpenSSL's configuration, and
  # the OS identification vulnerability scanners look for.
  for file in /etc/ld.so.cache /etc/nsswitch.conf /etc/ssl/openssl.cnf \
      /etc/ssl/certs/ca-certificates.crt /etc/os-release /usr/lib/os-release; do
    if [ -L "$file" ]; then
      mkdir -p "$destination$(dirname "$file")"
      cp -P "$file" "$destination$file"
    elif [ -e "$file" ]; then
      copy "$file"
    fi
  done
  if [ -d /usr/lib/ssl ]; then mkdir -p "$destination/usr/lib" && cp -a /usr/lib/ssl "$destination/usr/lib/"; fi

  # Exactly two accounts: root (owns the system files) and the app's user.
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nappuser:x:%s:%s::/app:/usr/sbin/nologin\n' \
    "$app_uid" "$app_gid" >"$destination/etc/passwd"
  printf 'root:x:0:\nappuser:x:%s:\n' "$app_gid" >"$destination/etc/group"
  chmod 0644 "$destination/etc/passwd" "$destination/etc/group"
}

libraries() {
  venv=$1
  base_root=$2
  mkdir -p "$destination"
  objects=$(find "$venv" -name '*.so*' -type f)
  [ -n "$objects" ] || return 0
  # shellcheck disable=SC2086 # one path per word, none with spaces
  require_libraries_of $objects
  # shellcheck disable=SC2086 # one path per word, none with spaces
  libraries_of $objects | while read -r library; do
    if [ ! -e "$base_root$(readlink -f "$(dirname "$library")")/$(basename "$library")" ]; then
      copy "$library"
    fi
  done
}

[ $# -ge 2 ] || usage
mode=$1
destination=$2
shift 2
case "$mode" in
  base) [ $# -eq 2 ] || usage; base "$@" ;;
  libraries) [ $# -eq 2 ] || usage; libraries "$@" ;;
  *) usage ;;
esac
