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

.PHONY: help deps firmware qemu-image demo demo-down test test-unit test-qemu \
	check-layering bench fuzz image clean

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
	qemu/cluster up --heads 1 --isus 2 --image $(BUILD)/qemu --run-dir $(BUILD)/demo

demo-down:
	qemu/cluster down --run-dir $(BUILD)/demo

test: deps
	@tools/run-tests

# The parts of `make test`, runnable on their own.
test-unit:
	cargo test --workspace --locked

check-layering:
	@tools/check-layering

test-qemu: qemu-image
	tests/qemu/run --image $(BUILD)/qemu

bench: deps firmware
	@for b in bench/*/run; do echo "== $$b"; $$b || exit 1; done

fuzz:
	@tools/fuzz

image:
	@if [ -z "$(BUILDROOT)" ]; then \
		echo "make image needs a Buildroot $(BUILDROOT_TAG) checkout: make image BUILDROOT=/path/to/buildroot"; \
		echo "See docs/buildroot.md for the host packages and the offline checks."; \
		exit 2; \
	fi
	$(MAKE) firmware
	$(MAKE) -C $(BUILDROOT) O=$(BUILD)/buildroot BR2_EXTERNAL=$(CURDIR)/buildroot-external opie_x86_64_defconfig
	$(MAKE) -C $(BUILDROOT) O=$(BUILD)/buildroot

clean:
	cargo clean
	rm -rf $(BUILD)
