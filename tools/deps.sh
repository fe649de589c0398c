#!/bin/sh
# deps.sh - install what building, testing and the demo need on Debian 12,
# skipping whatever is already there.  Run as root (or with sudo).
set -eu
cd "$(dirname "$0")/.."

packages="build-essential autoconf automake libtool pkg-config ca-certificates tzdata
  libmongoc-dev libbson-dev libcurl4-openssl-dev zlib1g-dev libssl-dev libinih-dev
  libxml2-dev check python3 python3-pymongo python3-pymongo-ext python3-azure-storage
  valgrind clang libclang-rt-14-dev"
missing=""
for p in $packages; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
# Any Node.js will do for Azurite; Debian's is used only if there is none.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"

if [ -n "$missing" ]; then
	echo "deps.sh: installing:$missing"
	if [ "$(id -u)" != 0 ]; then
		echo "deps.sh: these packages are missing; run as root to install them" >&2
		exit 1
	fi
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

# Azurite, Microsoft's Blob emulator, pinned by tests/azurite/package-lock.json.
if [ ! -x tests/azurite/node_modules/.bin/azurite-blob ]; then
	echo "deps.sh: installing Azurite (npm ci)"
	npm ci --prefix tests/azurite --no-audit --no-fund --loglevel=error
fi
