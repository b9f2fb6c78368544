#!/bin/sh
# Opie post-image script: installs the A/B GRUB configuration and its
# environment block on the EFI partition, then assembles the GPT boot disk
# (output/images/disk.img) with genimage.
# Buildroot runs it from its top directory with BINARIES_DIR exported.

set -eu

BOARD_DIR="$(cd "$(dirname "$0")" && pwd)"
EFI_BOOT_DIR="${BINARIES_DIR}/efi-part/EFI/BOOT"

if [ ! -f "${EFI_BOOT_DIR}/bootx64.efi" ]; then
	echo "post-image.sh: ${EFI_BOOT_DIR}/bootx64.efi missing (BR2_TARGET_GRUB2_X86_64_EFI)" >&2
	exit 1
fi

# Kernel command line shared by every slot, from board/opie/cmdline.
CMDLINE="$(tr -s '\n' ' ' < "${BOARD_DIR}/cmdline" | sed 's/ *$//')"
sed "s|@CMDLINE@|${CMDLINE}|" "${BOARD_DIR}/grub.cfg" > "${EFI_BOOT_DIR}/grub.cfg"

# GRUB environment block: a 1024-byte file, header line, NAME=value lines,
# padded with '#'. GRUB rewrites it in place (save_env), so the size is
# fixed. Factory state: both slots hold this image, A is preferred.
GRUBENV="${EFI_BOOT_DIR}/grubenv"
{
	echo "# GRUB Environment Block"
	echo "OPIE_ORDER=A B"
	echo "OPIE_A_OK=1"
	echo "OPIE_A_TRY=0"
	echo "OPIE_B_OK=1"
	echo "OPIE_B_TRY=0"
} > "${GRUBENV}.tmp"
USED="$(wc -c < "${GRUBENV}.tmp")"
head -c "$((1024 - USED))" /dev/zero | tr '\0' '#' >> "${GRUBENV}.tmp"
if [ "$(wc -c < "${GRUBENV}.tmp")" -ne 1024 ]; then
	echo "post-image.sh: GRUB environment block is not 1024 bytes" >&2
	exit 1
fi
mv "${GRUBENV}.tmp" "${GRUBENV}"

support/scripts/genimage.sh -c "${BOARD_DIR}/genimage.cfg"
