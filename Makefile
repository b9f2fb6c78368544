# Opie: the two commands a newcomer needs are `make demo` and `make test`.
# Each installs what it needs first (`make deps`, idempotent).

SHELL := /bin/bash
.DEFAULT_GOAL := help

TARGET      := x86_64-unknown-linux-gnu
OPIE_BIN    := $(CURDIR)/target/$(TARGET)/release/opie
BUILD       := $(CURDIR)/build
# Buildroot release the production image is built with (never vendored).
BUILDROOT_TAG := 2026.02.3
BUILDROOT   ?=

# Host packages: QEMU and virtual switches for the cluster, stock NBD and
# DHCP peers for integration tests and benchmarks, tools the image builder
# uses. qemu-utils is pinned to bookworm's build so that qemu-system-x86
# (bookworm) installs beside it on machines that came with a newer one.
APT_PACKAGES := qemu-system-x86 qemu-utils/bookworm vde2 socat busybox-static \
	zstd cpio xz-utils kmod file e2fsprogs iproute2 tmux \
	nbdkit libnbd-bin nbd-server nbd-client fio \
	udhcpc isc-dhcp-client dhcpcd-base dnsmasq-base kea-admin \
	shellcheck python3 python3-magic

# What buildroot-external/check needs beyond the packages above.
IMAGE_CHECK_PACKAGES := rsync python3-flake8 grub-common

.PHONY: help deps firmware qemu-image demo demo-down test test-unit test-qemu \
	check-layering lint bench fuzz image image-check clean

help:
	@echo "make demo   boot a 3-node Opie cluster in QEMU and show how to reach it"
	@echo "make test   run every test (unit, host integration, QEMU end to end)"
	@echo "other targets: deps firmware qemu-image demo-down bench fuzz image clean"

deps:
	@tools/install-deps $(APT_PACKAGES)

firmware:
	RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
		--target $(TARGET) -p opie-daemon
	@tools/check-static $(OPIE_BIN)

qemu-image: deps firmware
	qemu/build-image --opie $(OPIE_BIN) --out $(BUILD)/qemu

demo: qemu-image
	qemu/cluster up --heads 1 --isus 2 --leased-isus --image $(BUILD)/qemu --run-dir $(BUILD)/demo

demo-down:
	qemu/cluster down --run-dir $(BUILD)/demo

test: deps
	@tools/run-tests

# The parts of `make test`, runnable on their own.
test-unit:
	cargo test --workspace --locked

check-layering:
	@tools/check-layering

lint:
	@tools/check-lints

test-qemu: qemu-image
	tests/qemu/all --image $(BUILD)/qemu

bench: deps firmware qemu-image
	@for b in bench/*/run; do echo "== $$b"; OPIE=$(OPIE_BIN) IMAGE=$(BUILD)/qemu $$b || exit 1; done

fuzz:
	@tools/fuzz

image: IMAGE_DEFCONFIG ?= opie_x86_64_defconfig
image: IMAGE_OUT = $(BUILD)/buildroot$(if $(filter-out opie_x86_64_defconfig,$(IMAGE_DEFCONFIG)),-$(IMAGE_DEFCONFIG:_defconfig=))
image:
	@if [ -z "$(BUILDROOT)" ]; then \
		echo "make image builds the production boot disk with Buildroot $(BUILDROOT_TAG). It needs:"; \
		echo "  - a Buildroot $(BUILDROOT_TAG) checkout or release tarball, outside this repository"; \
		echo "    (git tag $(BUILDROOT_TAG) of https://gitlab.com/buildroot.org/buildroot.git, or"; \
		echo "    https://buildroot.org/downloads/buildroot-$(BUILDROOT_TAG).tar.xz), given as"; \
		echo "      make image BUILDROOT=/path/to/buildroot [IMAGE_DEFCONFIG=opie_qemu_x86_64_defconfig]"; \
		echo "  - host packages (Debian): build-essential rsync bc cpio unzip file wget perl python3 git"; \
		echo "  - network access to the upstream source sites: Buildroot downloads every source"; \
		echo "    (each checked against its sha256) and builds the toolchain, kernel and packages"; \
		echo "  - host tar >= 1.35; with an older tar (Debian 12 has 1.34) Buildroot builds host-tar"; \
		echo "    first, which as root needs FORCE_UNSAFE_CONFIGURE=1 (set here when run as root)"; \
		echo "Offline check of the tree, no downloads: buildroot-external/check /path/to/buildroot"; \
		echo "Details: docs/buildroot.md"; \
		exit 2; \
	fi
	@v=$$($(MAKE) -s --no-print-directory -C $(BUILDROOT) print-version); \
	if [ "$$v" != "$(BUILDROOT_TAG)" ]; then \
		echo "warning: $(BUILDROOT) is Buildroot $$v; Opie's tree is kept against $(BUILDROOT_TAG)"; \
	fi
	$(MAKE) firmware
	$(MAKE) -C $(BUILDROOT) O=$(IMAGE_OUT) BR2_EXTERNAL=$(CURDIR)/buildroot-external $(IMAGE_DEFCONFIG)
# opie is a local package: take the binary just built, not a stale copy.
	$(MAKE) -C $(BUILDROOT) O=$(IMAGE_OUT) opie-dirclean
	$(if $(filter 0,$(shell id -u)),FORCE_UNSAFE_CONFIGURE=1) $(MAKE) -C $(BUILDROOT) O=$(IMAGE_OUT)
	@echo "boot disk image: $(IMAGE_OUT)/images/disk.img"

# Offline validation of the Buildroot tree against a Buildroot checkout
# (defconfigs round-trip through savedefconfig, hashes, check-package).
image-check: firmware
	@if [ -z "$(BUILDROOT)" ]; then echo "usage: make image-check BUILDROOT=/path/to/buildroot-$(BUILDROOT_TAG)"; exit 2; fi
	@tools/install-deps $(IMAGE_CHECK_PACKAGES)
	buildroot-external/check $(BUILDROOT)

clean:
	cargo clean
	rm -rf $(BUILD)
