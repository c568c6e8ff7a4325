#!/usr/bin/env bash
# Checks the systemd units: systemd-analyze verify (syntax, dependencies,
# the binary named by ExecStart) and systemd-analyze security (the
# exposure of postie.service must stay "OK" or better: at most 2.0).
#
# Usage: dist/systemd/check.sh [POSTIE-BINARY]
# The units name /usr/bin/postie; when it is not installed, they are
# checked against POSTIE-BINARY (default: one built from this tree).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
threshold=${THRESHOLD:-20} # systemd-analyze's tenths: 2.0
command -v systemd-analyze >/dev/null || { echo "check.sh: systemd-analyze is missing (apt-get install systemd)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=${1:-}
if [ -z "$bin" ] && [ ! -x /usr/bin/postie ]; then
	bin=$tmp/postie
	(cd "$here/../.." && go build -o "$bin" ./cmd/postie)
fi
mkdir "$tmp/units"
cp "$here"/*.service "$here"/*.socket "$tmp/units/"
if [ -n "$bin" ]; then
	sed -i "s|/usr/bin/postie|$bin|g" "$tmp"/units/*
fi
cd "$tmp/units"
systemd-analyze verify --man=no ./*.service ./*.socket
for unit in postie.service postie-fetch@check.service; do
	src=$unit
	[ "$unit" = postie-fetch@check.service ] && cp postie-fetch@.service "$unit" && src=$unit
	out=$(systemd-analyze security --offline=yes --threshold="$threshold" "$src" 2>&1) || {
		printf '%s\n' "$out" >&2
		echo "check.sh: $unit is exposed more than $threshold/10" >&2
		exit 1
	}
	printf '%s\n' "$out" | tail -n 1
done
