#!/usr/bin/env bash
# Builds the Debian package of postie from this tree with dpkg-deb:
#
#   dist/deb/build.sh [OUTDIR]        -> OUTDIR/postie_<version>_<arch>.deb
#
# The package version is the version `postie version` prints: $VERSION
# when set, else the tag (vX.Y.Z -> X.Y.Z) when the commit has one, else
# 0.0.0~git<commit time>.<short commit> (which sorts by commit time). The
# build date is $SOURCE_DATE_EPOCH when set (reproducible builds), else
# now. $ARCH picks another Debian architecture (amd64, arm64, armhf, i386,
# riscv64, ppc64el, s390x). Needs go, git, dpkg-deb and gzip.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(mkdir -p "${1:-$root/dist/out}" && cd "${1:-$root/dist/out}" && pwd)
cd "$root"

commit=$(git rev-parse HEAD)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
	commit="$commit-dirty"
fi
if [ -z "${VERSION:-}" ]; then
	if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
		VERSION=${tag#v}
	else
		VERSION="0.0.0~git$(TZ=UTC git log -1 --date=format-local:%Y%m%d%H%M%S --format=%cd).$(git rev-parse --short=12 HEAD)"
	fi
fi
if ! printf '%s' "$VERSION" | grep -Eq '^[0-9][A-Za-z0-9.+~-]*$'; then
	echo "build.sh: version $VERSION is not a Debian version" >&2
	exit 1
fi
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)
arch=${ARCH:-$(dpkg --print-architecture)}
goarm=""
case $arch in
amd64 | arm64 | riscv64 | s390x) goarch=$arch ;;
armhf) goarch=arm goarm=7 ;;
i386) goarch=386 ;;
ppc64el) goarch=ppc64le ;;
*)
	echo "build.sh: no Go port for Debian architecture $arch" >&2
	exit 1
	;;
esac

pkg=$(mktemp -d)
trap 'rm -rf "$pkg"' EXIT
chmod 0755 "$pkg"
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/etc/postie" "$pkg/lib/systemd/system" \
	"$pkg/usr/share/man/man8" "$pkg/usr/share/bash-completion/completions" \
	"$pkg/usr/share/zsh/vendor-completions" "$pkg/usr/share/fish/vendor_completions.d" \
	"$pkg/usr/share/doc/postie/examples"

CGO_ENABLED=0 GOOS=linux GOARCH=$goarch GOARM=$goarm GOFLAGS=-buildvcs=false \
	go build -trimpath -o "$pkg/usr/bin/postie" \
	-ldflags "-s -w -X main.version=$VERSION -X main.commit=$commit -X main.date=$date" ./cmd/postie
chmod 0755 "$pkg/usr/bin/postie"

install -m 0640 "$here/postie.toml" "$pkg/etc/postie/postie.toml"
install -m 0644 "$root"/dist/systemd/*.service "$root"/dist/systemd/*.socket "$pkg/lib/systemd/system/"
gzip -9n <"$here/postie.8" >"$pkg/usr/share/man/man8/postie.8.gz"
# The completion scripts come from the binary (cobra); only when it runs here.
if [ "$goarch" = "$(go env GOARCH)" ]; then
	"$pkg/usr/bin/postie" completion bash >"$pkg/usr/share/bash-completion/completions/postie"
	"$pkg/usr/bin/postie" completion zsh >"$pkg/usr/share/zsh/vendor-completions/_postie"
	"$pkg/usr/bin/postie" completion fish >"$pkg/usr/share/fish/vendor_completions.d/postie.fish"
fi
install -m 0644 README.md docs/operations.md "$pkg/usr/share/doc/postie/"
install -m 0644 examples/postie.toml examples/fetch.toml "$pkg/usr/share/doc/postie/examples/"
cat >"$pkg/usr/share/doc/postie/copyright" <<EOT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: postie
Source: https://github.com/postie-mail/postie
Comment: built from commit $commit
EOT
find "$pkg/usr/share" -type f -exec chmod 0644 {} +

install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$pkg/DEBIAN/"
echo /etc/postie/postie.toml >"$pkg/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<EOT
Package: postie
Version: $VERSION
Architecture: $arch
Maintainer: postie developers <postie@postie-mail.invalid>
Installed-Size: $size
Depends: adduser
Recommends: systemd | systemd-sysv
Suggests: postfix | mail-transport-agent
Section: mail
Priority: optional
Homepage: https://github.com/postie-mail/postie
Description: POP3 server with LMTP intake, delivery agent and retriever
 postie is a POP3 mail system in one binary: a POP3 server (STLS, implicit
 TLS, SASL) over Maildir storage shared with Postfix, Dovecot and every
 Maildir tool, LMTP and SMTP intake and a local delivery agent for the MTA
 in front of it, and a retriever that pulls mail from other POP3 servers.
 It runs as the postie user under systemd, on sockets systemd binds.
EOT
deb="$out/postie_${VERSION}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
