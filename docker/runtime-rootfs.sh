#!/bin/sh
# Assemble the runtime image's root filesystem into DESTINATION: the Python interpreter and
# its standard library, the shared libraries that it, its extension modules and the venv's
# compiled packages load, a shell and the few tools an operator and the verification suite
# use in a running container - and nothing else (no apt, dpkg, perl or package caches).
# Run as root in a stage FROM the Python base image, after the venv is at VENV.
# usage: runtime-rootfs.sh DESTINATION VENV APP_UID APP_GID
set -eu

destination=$1
venv=$2
app_uid=$3
app_gid=$4

# What `docker exec`, tests/infra and a derived image's RUN use: /bin/sh, awk over /proc,
# find, stat, id, whoami, and the basic file tools.
tools="sh cat ls find stat id whoami env awk grep head tail sort wc sleep touch rm mkdir cp mv chmod"

python=$(readlink -f "$(command -v python3)")
stdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')
platstdlib=$(python3 -c 'import sysconfig; print(sysconfig.get_path("platstdlib"))')

# Copy a path to the same place under the destination, through its real directory, so the
# merged-/usr symlinks recreated below keep resolving as they do in the base image.
copy() {
  source_path=$1
  directory=$(readlink -f "$(dirname "$source_path")")
  mkdir -p "$destination$directory"
  cp -L --preserve=mode "$source_path" "$destination$directory/$(basename "$source_path")"
}

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

# The interpreter, under every name the venv's pyvenv.cfg and shebangs can point at.
copy "$python"
for name in python3 python "$(basename "$python")"; do
  found=$(command -v "$name" || true)
  if [ -n "$found" ] && [ "$(readlink -f "$found")" = "$python" ] && [ "$found" != "$python" ]; then
    mkdir -p "$destination$(dirname "$found")"
    ln -sf "$python" "$destination$found"
  fi
done

# The standard library without its test suite, GUI and bootstrap-installer parts.
mkdir -p "$destination$stdlib"
(cd "$stdlib" && tar -c \
  --exclude=./test --exclude=./idlelib --exclude=./tkinter --exclude=./turtledemo \
  --exclude=./ensurepip --exclude='./lib-dynload/_test*' --exclude='./lib-dynload/xx*' \
  --exclude='./lib-dynload/_xxtestfuzz*' --exclude=./site-packages --exclude=./dist-packages \
  .) | tar -x -C "$destination$stdlib"
if [ "$platstdlib" != "$stdlib" ] && [ -d "$platstdlib" ]; then
  mkdir -p "$destination$platstdlib"
  cp -a "$platstdlib/." "$destination$platstdlib/"
fi
# Debian's interpreter imports sitecustomize from /etc/python3.X (a symlink from the stdlib).
version_dir=$(basename "$stdlib")
[ -d "/etc/$version_dir" ] && cp -a "/etc/$version_dir" "$destination/etc/"

tool_paths=""
for tool in $tools; do
  found=$(command -v "$tool")
  copy "$found"
  tool_paths="$tool_paths $found"
done

# Every shared library those binaries, the extension modules and the venv's compiled
# packages load, found the way the loader finds them (ldd), plus the loader itself.
find "$stdlib" "$platstdlib" "$venv" -name '*.so*' -type f >/tmp/runtime-rootfs-objects
for object in "$python" $tool_paths $(cat /tmp/runtime-rootfs-objects); do
  ldd "$object" 2>/dev/null | awk '/=> \// { print $3 } /^\t\// { print $1 }'
done | sort -u | while read -r library; do
  copy "$library"
done
rm -f /tmp/runtime-rootfs-objects

# Configuration the libraries read: the loader's cache (python:3.13-slim keeps libpython
# in /usr/local/lib), name service switch, TLS trust store, and the OS identification
# vulnerability scanners look for.
for file in /etc/ld.so.cache /etc/nsswitch.conf /etc/ssl/openssl.cnf \
    /etc/ssl/certs/ca-certificates.crt /etc/os-release /usr/lib/os-release; do
  if [ -e "$file" ]; then
    if [ -L "$file" ]; then
      mkdir -p "$destination$(dirname "$file")"
      cp -P "$file" "$destination$file"
    else
      copy "$file"
    fi
  fi
done
[ -d /usr/lib/ssl ] && mkdir -p "$destination/usr/lib" && cp -a /usr/lib/ssl "$destination/usr/lib/"

# Exactly two accounts: root (owns the system files) and the app's user.
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nappuser:x:%s:%s::/app:/usr/sbin/nologin\n' \
  "$app_uid" "$app_gid" >"$destination/etc/passwd"
printf 'root:x:0:\nappuser:x:%s:\n' "$app_gid" >"$destination/etc/group"
chmod 0644 "$destination/etc/passwd" "$destination/etc/group"
