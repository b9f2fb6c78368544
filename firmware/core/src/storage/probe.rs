//! Does a disk hold data? Opie's own signature probe over a device's first
//! [`PROBE_BYTES`] bytes.
//!
//! The test image has no `blkid` (util-linux is not in it), and the only
//! question Opie asks before creating an array is "is anything on this
//! disk?", so `opie_sys::host` reads the device's head and this pure
//! function names what it finds. md superblocks are reported here too but
//! their content (array, cluster, group) comes from `mdadm --examine`,
//! which also finds the 1.0 and 0.90 superblocks kept at the end of a disk.
//!
//! Signatures and where they sit (offsets in bytes from the start):
//!
//! ```text
//! md 1.1 superblock     0      a9 2b 4e fc (u32 LE 0xa92b4efc)
//! md 1.2 superblock     4096   same magic
//! ext2/3/4              1080   53 ef (u16 LE 0xef53, s_magic at 1024+56)
//! LVM2 PV label         512*k  "LABELONE" at a sector start, k in 0..4,
//!                              with "LVM2 001" 24 bytes further
//! XFS                   0      "XFSB"
//! LUKS                  0      "LUKS" ba be
//! GPT                   512    "EFI PART"
//! swap                  4086   "SWAPSPACE2" or "SWAP-SPACE" (4 KiB pages)
//! btrfs                 65600  "_BHRfS_M" (superblock at 64 KiB, magic +64)
//! MBR / boot sector     510    55 aa (partition table, FAT, ...)
//! ```
//!
//! Captured heads of real devices are in `testdata/storage/head-*.bin`.

/// How many bytes of a device's start the probe wants (covers btrfs).
pub const PROBE_BYTES: usize = 68 * 1024;

const MD_MAGIC: [u8; 4] = 0xa92b_4efc_u32.to_le_bytes();

/// A recognised signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// An md superblock (version 1.1 or 1.2); ask `mdadm --examine` whose.
    MdSuperblock,
    Ext,
    LvmPv,
    Xfs,
    Luks,
    Gpt,
    Swap,
    Btrfs,
    /// A DOS partition table or a boot sector (FAT, NTFS, ...).
    Mbr,
}

impl Signature {
    /// Words for an operator ("holds an ext2/3/4 filesystem").
    pub fn describe(self) -> &'static str {
        match self {
            Signature::MdSuperblock => "an md RAID superblock",
            Signature::Ext => "an ext2/3/4 filesystem",
            Signature::LvmPv => "an LVM physical volume",
            Signature::Xfs => "an XFS filesystem",
            Signature::Luks => "a LUKS encrypted volume",
            Signature::Gpt => "a GPT partition table",
            Signature::Swap => "swap space",
            Signature::Btrfs => "a btrfs filesystem",
            Signature::Mbr => "a DOS partition table or boot sector",
        }
    }
}

fn at(head: &[u8], offset: usize, magic: &[u8]) -> bool {
    head.get(offset..offset + magic.len()) == Some(magic)
}

/// Every signature found in `head` (a device's first bytes; shorter input
/// is probed as far as it goes, never read past).
pub fn probe(head: &[u8]) -> Vec<Signature> {
    let mut found = Vec::new();
    if at(head, 0, &MD_MAGIC) || at(head, 4096, &MD_MAGIC) {
        found.push(Signature::MdSuperblock);
    }
    if at(head, 1080, &[0x53, 0xef]) {
        found.push(Signature::Ext);
    }
    if (0..4).any(|k| at(head, 512 * k, b"LABELONE") && at(head, 512 * k + 24, b"LVM2 001")) {
        found.push(Signature::LvmPv);
    }
    if at(head, 0, b"XFSB") {
        found.push(Signature::Xfs);
    }
    if at(head, 0, b"LUKS\xba\xbe") {
        found.push(Signature::Luks);
    }
    if at(head, 512, b"EFI PART") {
        found.push(Signature::Gpt);
    }
    if at(head, 4086, b"SWAPSPACE2") || at(head, 4086, b"SWAP-SPACE") {
        found.push(Signature::Swap);
    }
    if at(head, 65536 + 64, b"_BHRfS_M") {
        found.push(Signature::Btrfs);
    }
    if at(head, 510, &[0x55, 0xaa]) && !found.contains(&Signature::Gpt) {
        found.push(Signature::Mbr);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testdata;

    #[test]
    fn captured_heads() {
        assert_eq!(probe(&testdata::bytes("head-member.bin")), [Signature::MdSuperblock]);
        assert_eq!(probe(&testdata::bytes("head-foreign-member.bin")), [Signature::MdSuperblock]);
        assert_eq!(probe(&testdata::bytes("head-pv.bin")), [Signature::LvmPv]);
        assert_eq!(probe(&testdata::bytes("head-ext4.bin")), [Signature::Ext]);
    }

    #[test]
    fn blank_and_short_heads() {
        assert_eq!(probe(&[0u8; PROBE_BYTES]), []);
        assert_eq!(probe(&[]), []);
        let ext = testdata::bytes("head-ext4.bin");
        for n in 0..ext.len() {
            let _ = probe(&ext[..n]);
        }
        assert_eq!(probe(&ext[..1081]), []);
        assert_eq!(probe(&ext[..1082]), [Signature::Ext]);
    }

    #[test]
    fn synthetic_signatures_at_their_offsets() {
        let mut h = vec![0u8; PROBE_BYTES];
        h[510] = 0x55;
        h[511] = 0xaa;
        h[65600..65608].copy_from_slice(b"_BHRfS_M");
        h[4086..4096].copy_from_slice(b"SWAPSPACE2");
        assert_eq!(probe(&h), [Signature::Swap, Signature::Btrfs, Signature::Mbr]);
        h[512..520].copy_from_slice(b"EFI PART");
        assert!(probe(&h).contains(&Signature::Gpt) && !probe(&h).contains(&Signature::Mbr));
        let mut x = vec![0u8; 8];
        x[..4].copy_from_slice(b"XFSB");
        assert_eq!(probe(&x), [Signature::Xfs]);
    }
}
