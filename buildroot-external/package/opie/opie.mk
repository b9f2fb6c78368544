################################################################################
#
# opie
#
################################################################################

# The binary is built by cargo in the Opie repository ("make firmware":
# cargo build --release --target x86_64-unknown-linux-gnu -p opie-daemon),
# which this external tree is part of. Buildroot's own Rust toolchain is
# older than the workspace's rust-version and its cargo infrastructure
# vendors crates at download time, so it cannot build Opie offline; the
# package takes cargo's output directory as a local site instead.
OPIE_VERSION = $(shell sed -n '/^\[workspace\.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' $(BR2_EXTERNAL_OPIE_PATH)/../Cargo.toml)
OPIE_SITE = $(abspath $(BR2_EXTERNAL_OPIE_PATH)/../target/x86_64-unknown-linux-gnu/release)
OPIE_SITE_METHOD = local
OPIE_LICENSE = GPL-2.0-only
# The local site is cargo's output directory (binary, rlibs, build
# scripts), not source: legal-info would archive it as "source". The
# corresponding source is the Opie repository at the commit recorded in
# BUILD_ID of /usr/lib/os-release.
OPIE_REDISTRIBUTE = NO
# Copy only the binary out of cargo's output directory.
OPIE_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --include=/opie --exclude='*'
# A prebuilt static binary: nothing is compiled with the target toolchain.
OPIE_ADD_TOOLCHAIN_DEPENDENCY = NO

define OPIE_CHECK_CARGO_OUTPUT
	@test -f $(OPIE_SITE)/opie || { \
		echo "ERROR: $(OPIE_SITE)/opie does not exist."; \
		echo "Build it first: make firmware (in $(BR2_EXTERNAL_OPIE_PATH)/..)"; \
		exit 1; }
endef
OPIE_PRE_RSYNC_HOOKS += OPIE_CHECK_CARGO_OUTPUT

# Refuse a binary that would need the build host's shared libraries.
define OPIE_BUILD_CMDS
	file -b $(@D)/opie | grep -q 'ELF 64-bit LSB .*x86-64' || { \
		echo "ERROR: $(@D)/opie is not an x86-64 ELF executable"; \
		exit 1; }
	file -b $(@D)/opie | grep -q -E 'statically linked|static-pie linked' || { \
		echo "ERROR: $(@D)/opie is not statically linked"; \
		exit 1; }
endef

define OPIE_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/opie $(TARGET_DIR)/usr/bin/opie
endef

$(eval $(generic-package))
