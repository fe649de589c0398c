#!/bin/sh
# deps.sh - install what building, testing and the demo need on Debian 12,
# skipping whatever is already there.  Run as root (or with sudo).
#   sh tools/deps.sh          everything: build, unit, integration and fuzz tests
#   sh tools/deps.sh --demo   only what tools/demo.sh needs: the build, pymongo
#                             for the MongoDB-wire test server, and Azurite
set -eu
cd "$(dirname "$0")/.."

demo_packages="build-essential autoconf automake pkg-config ca-certificates tzdata
  libmongoc-dev libbson-dev libcurl4-openssl-dev zlib1g-dev libssl-dev libinih-dev
  libxml2-dev libdeflate-dev libisal-dev python3 python3-pymongo python3-pymongo-ext"
case ${1-} in
--demo) packages=$demo_packages ;;
"") packages="$demo_packages libtool check python3-azure-storage python3-cryptography valgrind clang
  libclang-rt-14-dev shellcheck systemd" ;;
*) echo "usage: sh tools/deps.sh [--demo]" >&2; exit 2 ;;
esac

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
	# $missing splits into one argument per package.
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

# Azurite, Microsoft's Blob emulator, pinned by tests/azurite/package-lock.json.
if [ ! -x tests/azurite/node_modules/.bin/azurite-blob ]; then
	echo "deps.sh: installing Azurite (npm ci)"
	npm ci --prefix tests/azurite --no-audit --no-fund --loglevel=error
fi
