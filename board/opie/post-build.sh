#!/bin/sh
# Opie post-build script: removes package init scripts whose job belongs to
# the overlay's /etc/init.d/rcS or to opie, and names the image in
# /usr/lib/os-release (and /etc/os-release), replacing Buildroot's one.
# Buildroot calls it with the target directory as $1 and exports
# BR2_EXTERNAL_OPIE_PATH.

set -eu

TARGET_DIR="$1"
REPO_DIR="$(cd "${BR2_EXTERNAL_OPIE_PATH}/.." && pwd)"

# rcS (rootfs-overlay) runs every /etc/init.d/S??* hook. These come from
# Buildroot packages and must not run on an Opie node:
#   S01syslogd, S02klogd  rcS starts syslogd (in-memory ring) and klogd
#   S11modules            rcS loads /etc/modules-load.d itself
#   S30rpcbind, S60nfs    opie starts the NFS server on the active head only
for hook in S01syslogd S02klogd S11modules S30rpcbind S60nfs; do
	rm -f "${TARGET_DIR}/etc/init.d/${hook}"
done

VERSION="$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "${REPO_DIR}/Cargo.toml")"
if [ -z "${VERSION}" ]; then
	echo "post-build.sh: no version in [workspace.package] of ${REPO_DIR}/Cargo.toml" >&2
	exit 1
fi

# The commit the image was built from, when building from a git checkout.
BUILD_ID=""
if git -C "${REPO_DIR}" rev-parse --git-dir >/dev/null 2>&1; then
	BUILD_ID="$(git -C "${REPO_DIR}" describe --always --dirty --abbrev=12)"
fi

mkdir -p "${TARGET_DIR}/usr/lib" "${TARGET_DIR}/etc"
{
	echo "NAME=Opie"
	echo "ID=opie"
	echo "VERSION=\"${VERSION}\""
	echo "VERSION_ID=${VERSION}"
	echo "PRETTY_NAME=\"Opie ${VERSION}\""
	if [ -n "${BUILD_ID}" ]; then
		echo "BUILD_ID=${BUILD_ID}"
	fi
} > "${TARGET_DIR}/usr/lib/os-release"
rm -f "${TARGET_DIR}/etc/os-release"
ln -s ../usr/lib/os-release "${TARGET_DIR}/etc/os-release"
