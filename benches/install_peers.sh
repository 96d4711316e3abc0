#!/usr/bin/env bash
# Install the peer tools the benchmarks compare against, only those missing; with the
# argument `meta`, also exiftool and ffprobe for bench_meta.py. The scan bench needs:
# fd (Debian package fd-find, binary fdfind), b3sum, find/xargs (findutils) and GNU time
# (peak RSS; the bench falls back to a wait4 wrapper without it).
# Debian/Ubuntu only; run as root or with sudo available.
set -euo pipefail

missing=()
if [ "${1:-scan}" = "meta" ]; then
    # The metadata bench: exiftool and ffprobe.
    command -v exiftool >/dev/null 2>&1 || missing+=(libimage-exiftool-perl)
    command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
fi
command -v fdfind >/dev/null 2>&1 || command -v fd >/dev/null 2>&1 || missing+=(fd-find)
command -v b3sum >/dev/null 2>&1 || missing+=(b3sum)
{ command -v find >/dev/null 2>&1 && command -v xargs >/dev/null 2>&1; } || missing+=(findutils)
[ -x /usr/bin/time ] || missing+=(time)

if [ ${#missing[@]} -eq 0 ]; then
    echo "install_peers: the peer tools are present" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_peers: missing ${missing[*]} and no apt-get here; install them by hand" >&2
    exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install_peers: need root or sudo" >&2; exit 1; }
    sudo=(sudo)
fi
echo "install_peers: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
