#!/usr/bin/env bash
# Tests how docker/build-images.sh chooses its Debian mirror and suite
# (`--print-mirror`): DEBIAN_MIRROR / DEBIAN_SUITE, else the first Debian
# entry of the apt sources (one-line and deb822 formats) under
# APT_SOURCES_DIR. Needs no root, docker or network; runs in a fraction of a
# second. Also checks that the script names no mirror host of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

SCRIPT=docker/build-images.sh
TMP=$(mktemp -d "${TMPDIR:-/tmp}/betanet-test-build-images.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
FAILED=0
CASES=0

# run APT_DIR [VAR=VALUE...]: the script's --print-mirror output (stdout and
# stderr) and exit status, with only the given DEBIAN_* variables set.
run() {
    local dir=$1
    shift
    env -u DEBIAN_MIRROR -u DEBIAN_SUITE APT_SOURCES_DIR="$dir" "$@" \
        timeout 10 bash "$SCRIPT" --print-mirror 2>&1 && echo "status 0" || echo "status $?"
}

# expect NAME WANTED APT_DIR [VAR=VALUE...]
expect() {
    local name=$1 wanted=$2 got
    shift 2
    CASES=$((CASES + 1))
    got=$(run "$@")
    if [[ "$got" != *"$wanted"* ]]; then
        printf 'FAIL %s\n  wanted: %s\n  got:    %s\n' "$name" "$wanted" "$got" >&2
        FAILED=$((FAILED + 1))
    fi
}

# apt DIR FILE TEXT: writes DIR/FILE (creating DIR/sources.list.d).
apt() {
    mkdir -p "$TMP/$1/sources.list.d"
    printf '%s\n' "$3" >"$TMP/$1/$2"
}

apt one-line sources.list '# deb http://commented.example/debian bookworm main
deb cdrom:[Debian GNU/Linux 12 _Bookworm_]/ bookworm main
deb-src http://src.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://mirror.example/debian trixie main contrib # note
deb http://second.example/debian bookworm main'
expect "one-line sources.list" "http://mirror.example/debian trixie" "$TMP/one-line"

apt deb822 sources.list.d/debian.sources 'Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main'
expect "deb822 debian.sources" "http://mirror.example/debian bookworm" "$TMP/deb822"

apt deb822-skips sources.list.d/a.sources 'Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

types: deb
uris: http://off.example/debian
suites: bookworm
components: main
enabled: No

Types: deb
URIs: https://download.example/linux/debian
Suites: bookworm
Components: stable

Types: deb
URIs: https://deb.nodesource.example/node_20.x
Suites: nodistro
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBFdebian0bookworm0main
 -----END PGP PUBLIC KEY BLOCK-----

Types: deb deb-src
URIs:
 https://mirror.example/debian
Suites: trixie
Components: contrib
 main'
expect "deb822: deb-src, disabled, non-main, non-Debian and continuation lines" \
    "https://mirror.example/debian trixie" "$TMP/deb822-skips"

apt list-dir sources.list.d/a-google.list \
    'deb https://packages.example/apt cloud-sdk-bookworm main'
apt list-dir sources.list.d/b-debian.list.disabled 'deb http://disabled.example/debian bookworm main'
apt list-dir sources.list.d/c-debian.list 'deb http://list.example/debian bookworm main'
apt list-dir sources.list.d/d-debian.sources 'Types: deb
URIs: http://later.example/debian
Suites: trixie
Components: main'
expect "sources.list.d in name order, other names ignored" \
    "http://list.example/debian bookworm" "$TMP/list-dir"

apt order sources.list 'deb [ arch=amd64 trusted=yes ] http://first.example/debian bookworm main'
apt order sources.list.d/a.sources 'Types: deb
URIs: http://second.example/debian
Suites: trixie
Components: main'
expect "sources.list before sources.list.d" "http://first.example/debian bookworm" "$TMP/order"

printf '# the mirror list\nhttp://listed.example/debian\tpriority:1\nhttp://other.example/debian\n' \
    >"$TMP/mirrors.list"
apt mirror-list sources.list.d/debian.sources "Types: deb
URIs: mirror+file://$TMP/mirrors.list
Suites: bookworm
Components: main"
expect "mirror+file: list" "http://listed.example/debian bookworm" "$TMP/mirror-list"

expect "DEBIAN_MIRROR over the host's, suite from the host" \
    "http://override.example/debian bookworm" "$TMP/deb822" DEBIAN_MIRROR=http://override.example/debian
expect "DEBIAN_SUITE over the host's, mirror from the host" \
    "http://mirror.example/debian trixie" "$TMP/deb822" DEBIAN_SUITE=trixie
expect "both variables" "http://both.example/debian sid" "$TMP/deb822" \
    DEBIAN_MIRROR=http://both.example/debian DEBIAN_SUITE=sid

apt none sources.list 'deb http://archive.example/ubuntu jammy main'
apt none sources.list.d/node.sources 'Types: deb
URIs: https://deb.nodesource.example/node_20.x
Suites: nodistro
Components: main'
expect "no Debian entry: asks for DEBIAN_MIRROR" "set DEBIAN_MIRROR" "$TMP/none"
expect "no Debian entry: fails" "status 1" "$TMP/none"
expect "no apt directory: fails" "set DEBIAN_MIRROR" "$TMP/missing"
expect "DEBIAN_MIRROR alone, no apt sources: bookworm" \
    "http://only.example/debian bookworm" "$TMP/missing" DEBIAN_MIRROR=http://only.example/debian

# No mirror host of its own: the only URLs allowed are the MIRROR placeholders.
CASES=$((CASES + 1))
if grep -nE '[a-z+]+://' "$SCRIPT" | grep -v 'http://MIRROR/'; then
    echo "FAIL $SCRIPT names a host (above); take it from the apt sources or DEBIAN_MIRROR" >&2
    FAILED=$((FAILED + 1))
fi

if [ "$FAILED" -gt 0 ]; then
    echo "test-build-images: $FAILED of $CASES cases failed" >&2
    exit 1
fi
echo "test-build-images: $CASES cases passed"
