//! Disk images and file system images, each written by the real tools (mkfs.fat and mtools,
//! sfdisk and sgdisk, mkntfs and the ntfs-3g driver, mkfs.exfat and the exFAT FUSE driver,
//! qemu-img, mksquashfs; all installed by
//! scripts/services.sh): the payload is found at its exact path inside, byte for byte.

use std::process::Command;

use scan_core::{Reason, Report, Verdict};

use crate::testutil::{Whole, scan, scanner_of};

/// A payload that spans many clusters (so a file's chain is followed), unique to these tests.
fn payload() -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut out = b"MZ payload for disk image tests ".to_vec();
    while out.len() < 150_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out
}

/// Shell functions for the scripts: a FUSE driver run in the foreground (`fuse_mount DIR
/// COMMAND...`) and unmounted with its process waited for (`fuse_unmount DIR`), so every write
/// is in the image before the script ends.
const FUSE: &str = r#"
fuse_mount() {
    local dir=$1; shift
    "$@" >/dev/null 2>&1 &
    FUSE_PID=$!
    for _ in $(seq 200); do mountpoint -q "$dir" && return 0; sleep 0.05; done
    echo "$* did not mount" >&2; return 1
}
fuse_unmount() { fusermount -u "$1" 2>/dev/null || umount "$1"; wait "$FUSE_PID" || true; }
"#;

/// Runs `script` with bash in a fresh folder holding payload.exe and notes.txt, and returns
/// the file `output` it wrote.
pub(crate) fn built(script: &str, output: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("payload.exe"), payload()).unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"nothing to see ".repeat(300)).unwrap();
    let run = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &format!("{FUSE}\n{script}")])
        .current_dir(dir.path())
        .env("PATH", "/usr/sbin:/sbin:/usr/bin:/bin")
        .output()
        .expect("bash runs");
    assert!(
        run.status.success(),
        "{script}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read(dir.path().join(output)).unwrap()
}

/// Scans `image` with an engine that knows only the payload's hash.
async fn scanned(name: &str, image: Vec<u8>) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner_of(dir.path(), Whole::of(&payload(), "payload"));
    scan(&scanner, name, image).await
}

fn assert_found_at(report: &Report, expected: &[String]) {
    let mut found: Vec<&str> = report.detections.iter().map(|d| d.path.as_str()).collect();
    found.sort_unstable();
    assert_eq!(found, expected, "{report:#?}");
    assert_eq!(report.verdict, Verdict::Infected);
    assert!(report.problems.is_empty(), "{report:#?}");
}

/// A 40 MB disk with an MBR and one FAT32 partition from 1 MiB, the payload in a folder.
const MBR_FAT32: &str = "truncate -s 40M mbr.img
printf 'start=2048, type=c\\n' | sfdisk -q mbr.img
mkfs.fat -F 32 --offset 2048 mbr.img 38912 >/dev/null 2>&1
mmd -i mbr.img@@1M ::/Invoice
mcopy -i mbr.img@@1M notes.txt ::/notes.txt
mcopy -i mbr.img@@1M payload.exe ::/Invoice/report.exe";

#[tokio::test]
async fn fat_volumes_on_floppies_and_mbr_and_gpt_disks_give_files_by_their_path() {
    let floppy = built(
        "mkfs.fat -C floppy.img 1440 >/dev/null
        mmd -i floppy.img ::/Invoice
        mcopy -i floppy.img notes.txt ::/notes.txt
        mcopy -i floppy.img payload.exe '::/Invoice/Quarterly Report.exe'",
        "floppy.img",
    );
    let report = scanned("floppy.img", floppy).await;
    assert_found_at(&report, &["floppy.img/Invoice/Quarterly Report.exe".into()]);
    assert_eq!(report.file_type, "disk image");

    let mbr = built(MBR_FAT32, "mbr.img");
    assert_found_at(
        &scanned("mbr.img", mbr).await,
        &["mbr.img/part-1/Invoice/report.exe".into()],
    );

    // GPT, FAT16 in its second slot, and logical partitions of an extended MBR one.
    let gpt = built(
        "truncate -s 20M gpt.img
        sgdisk -o -n 2:2048:0 -t 2:0700 gpt.img >/dev/null
        mkfs.fat -F 16 --offset 2048 gpt.img 18432 >/dev/null 2>&1
        mcopy -i gpt.img@@1M payload.exe ::/report.exe",
        "gpt.img",
    );
    assert_found_at(
        &scanned("gpt.img", gpt).await,
        &["gpt.img/part-2/report.exe".into()],
    );
    let logical = built(
        "truncate -s 24M ext.img
        printf 'start=2048, size=4096, type=c\\nstart=8192, type=5\\nstart=10240, size=8192, type=c\\nstart=20480, type=c\\n' | sfdisk -q ext.img
        mkfs.fat --offset 20480 ext.img 1024 >/dev/null 2>&1
        mcopy -i ext.img@@10M payload.exe ::/second.exe
        mkfs.fat --offset 10240 ext.img 4096 >/dev/null 2>&1
        mcopy -i ext.img@@5M payload.exe ::/first.exe",
        "ext.img",
    );
    assert_found_at(
        &scanned("ext.img", logical).await,
        &[
            "ext.img/part-5/first.exe".into(),
            "ext.img/part-6/second.exe".into(),
        ],
    );
}

#[tokio::test]
async fn vhd_and_vhdx_disks_are_read_through_their_block_tables() {
    for (name, convert) in [
        ("fixed.vhd", "-O vpc -o subformat=fixed"),
        ("dynamic.vhd", "-O vpc -o subformat=dynamic"),
        ("disk.vhdx", "-O vhdx"),
        ("small-blocks.vhdx", "-O vhdx -o block_size=1M"),
    ] {
        let image = built(
            &format!("{MBR_FAT32}\nqemu-img convert -q -f raw {convert} mbr.img {name}"),
            name,
        );
        let report = scanned(name, image).await;
        assert_found_at(&report, &[format!("{name}/part-1/Invoice/report.exe")]);
    }
}

#[tokio::test]
async fn ntfs_volumes_give_files_streams_and_hard_links_once() {
    // Written by the ntfs-3g driver itself, mounted through FUSE.
    let ntfs = built(
        "truncate -s 24M ntfs.img
        mkntfs -F -Q ntfs.img >/dev/null 2>&1
        mkdir m
        fuse_mount m ntfs-3g -o no_detach,streams_interface=windows ntfs.img m
        trap 'fuse_unmount m' EXIT
        mkdir -p m/Invoice/2026
        cp payload.exe m/Invoice/2026/report.exe
        ln m/Invoice/2026/report.exe m/Invoice/copy.exe
        cp notes.txt m/readme.txt
        cp payload.exe 'm/readme.txt:hidden'",
        "ntfs.img",
    );
    let report = scanned("ntfs.img", ntfs).await;
    let mut found: Vec<&str> = report.detections.iter().map(|d| d.path.as_str()).collect();
    found.sort_unstable();
    // The hard link is one file: found once, under whichever of its names the walk met first.
    assert_eq!(found.len(), 2, "{report:#?}");
    assert_eq!(found[1], "ntfs.img/readme.txt:hidden");
    assert!(
        [
            "ntfs.img/Invoice/2026/report.exe",
            "ntfs.img/Invoice/copy.exe"
        ]
        .contains(&found[0]),
        "{found:?}"
    );
    assert!(report.problems.is_empty(), "{report:#?}");

    // An MBR disk holding NTFS, in a VHDX.
    let vhdx = built(
        "truncate -s 24M disk.img
        printf 'start=2048, type=7\\n' | sfdisk -q disk.img
        dd if=/dev/zero of=part.img bs=1M count=23 status=none
        mkntfs -F -Q -p 2048 part.img >/dev/null 2>&1
        mkdir m
        fuse_mount m ntfs-3g -o no_detach part.img m
        cp payload.exe m/report.exe
        fuse_unmount m
        dd if=part.img of=disk.img bs=1M seek=1 conv=notrunc status=none
        qemu-img convert -q -f raw -O vhdx disk.img disk.vhdx",
        "disk.vhdx",
    );
    assert_found_at(
        &scanned("disk.vhdx", vhdx).await,
        &["disk.vhdx/part-1/report.exe".into()],
    );
}

/// Where the first data run of the unnamed, non-resident `$DATA` attribute of the file named
/// `name` starts in an NTFS image: the run's header byte's offset, found through the MFT record
/// that holds the name.
fn first_data_run(image: &[u8], name: &str) -> usize {
    let utf16: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([image[at], image[at + 1]]));
    let u32_at = |at: usize| u32::from_le_bytes(image[at..at + 4].try_into().unwrap());
    for record in (0..image.len() - 1024).step_by(1024) {
        let bytes = &image[record..record + 1024];
        if !bytes.starts_with(b"FILE") || !bytes.windows(utf16.len()).any(|w| w == utf16) {
            continue;
        }
        let mut attribute = record + u16_at(record + 0x14);
        while u32_at(attribute) != 0xFFFF_FFFF {
            if u32_at(attribute) == 0x80 && image[attribute + 8] == 1 && image[attribute + 9] == 0 {
                return attribute + u16_at(attribute + 0x20);
            }
            attribute += u32_at(attribute + 4) as usize;
        }
    }
    panic!("no MFT record names {name}");
}

/// A data run that reads clusters already read: one file's run moved onto another file's
/// clusters, or a file whose last cluster is taken from a second run pointed back into its
/// first (a run's LCN is relative to the previous run's; an offset of zero would mark the run
/// sparse, so the second run points one cluster past the first's start).
#[tokio::test]
async fn ntfs_runs_that_point_back_are_corrupt_never_read_twice() {
    let ntfs = || {
        built(
            "truncate -s 24M ntfs.img
            mkntfs -F -Q ntfs.img >/dev/null 2>&1
            mkdir m
            fuse_mount m ntfs-3g -o no_detach ntfs.img m
            trap 'fuse_unmount m' EXIT
            cp payload.exe m/report.exe
            cp payload.exe m/other.exe",
            "ntfs.img",
        )
    };
    let corrupt = |report: &Report| {
        assert_ne!(report.verdict, Verdict::Clean, "{report:#?}");
        assert!(
            report.problems.iter().any(|p| p.reason == Reason::Corrupt
                && p.message.contains("clusters already read")),
            "{report:#?}"
        );
    };
    // A mapping pair's header: the low nibble is the length's size, the high one the offset's.
    let sizes = |header: u8| (usize::from(header & 0xF), usize::from(header >> 4));

    let mut image = ntfs();
    let (report, other) = (
        first_data_run(&image, "report.exe"),
        first_data_run(&image, "other.exe"),
    );
    assert_eq!(image[report], image[other], "both runs are encoded alike");
    let (length, offset) = sizes(image[report]);
    let lcn = 1 + length..1 + length + offset;
    let theirs = image[report + lcn.start..report + lcn.end].to_vec();
    image[other + lcn.start..other + lcn.end].copy_from_slice(&theirs);
    // Fixups replace the last two bytes of each sector; the runs lie well before them.
    assert!((other + lcn.end) % 512 < 510);
    corrupt(&scanned("shared.img", image).await);

    let mut image = ntfs();
    let run = first_data_run(&image, "report.exe");
    let (length, offset) = sizes(image[run]);
    assert_eq!(length, 1, "a run of under 256 clusters");
    let clusters = image[run + 1];
    assert!(
        image[run + 1 + length + offset] == 0,
        "one run, then the end"
    );
    // The first run keeps all but one cluster; a second, of one cluster at offset +1, reads
    // the first run's second cluster again. The attribute has room: runs are padded to 8.
    image[run + 1] = clusters - 1;
    let second = run + 1 + length + offset;
    image[second..second + 4].copy_from_slice(&[0x11, 1, 1, 0]);
    assert!((second + 4) % 512 < 510);
    corrupt(&scanned("back.img", image).await);
}

#[tokio::test]
async fn squashfs_images_in_every_compression_give_files_by_their_path() {
    for method in ["gzip", "xz", "zstd", "lz4"] {
        let image = built(
            &format!(
                "mkdir -p root/usr/bin root/etc
                cp payload.exe root/usr/bin/tool
                cp notes.txt root/etc/notes
                mksquashfs root fs.sqfs -comp {method} -noappend -quiet >/dev/null"
            ),
            "fs.sqfs",
        );
        let report = scanned("fs.sqfs", image).await;
        assert_found_at(&report, &["fs.sqfs/usr/bin/tool".into()]);
        assert_eq!(report.file_type, "squashfs");
    }
    // LZO, by both of mksquashfs's kinds of compressor (fast and best): the decoder is ours, so
    // the file found is one that compresses (random bytes are stored as they are), several
    // blocks long, with the tables and directories LZO-compressed too.
    let text: String = (1..=40_000)
        .map(|i| format!("{i} lines of a compressible tool\n"))
        .collect();
    for algorithm in ["lzo1x_1", "lzo1x_999"] {
        let image = built(
            &format!(
                "mkdir -p root/usr/bin root/etc
                seq 1 40000 | sed 's/$/ lines of a compressible tool/' > root/usr/bin/tool
                cp payload.exe root/etc/payload
                mksquashfs root fs.sqfs -comp lzo -Xalgorithm {algorithm} -noappend -quiet >/dev/null"
            ),
            "fs.sqfs",
        );
        assert!(
            image.len() < text.len() / 2 + 200_000,
            "{} bytes",
            image.len()
        );
        let dir = tempfile::tempdir().unwrap();
        let scanner = scanner_of(dir.path(), Whole::of(text.as_bytes(), "tool"));
        let report = scan(&scanner, "lzo.sqfs", image).await;
        assert_found_at(&report, &["lzo.sqfs/usr/bin/tool".into()]);
        assert_eq!(report.objects, 3, "{report:#?}");
    }
}

/// The byte offset of the directory entry with the 8.3 name `short` (11 bytes, padded).
fn entry_at(image: &[u8], short: &[u8; 11]) -> usize {
    image
        .windows(11)
        .position(|w| w == short)
        .unwrap_or_else(|| panic!("{} is in the image", String::from_utf8_lossy(short)))
}

/// Sets FAT12 entry `cluster` to `value` in both tables of a 1.44 MB floppy (tables of 9
/// sectors after one reserved sector).
fn set_fat12(image: &mut [u8], cluster: usize, value: u16) {
    for table in [512, 512 + 9 * 512] {
        let at = table + cluster * 3 / 2;
        let old = u16::from_le_bytes([image[at], image[at + 1]]);
        let new = if cluster.is_multiple_of(2) {
            (old & 0xF000) | value
        } else {
            (old & 0x000F) | (value << 4)
        };
        image[at..at + 2].copy_from_slice(&new.to_le_bytes());
    }
}

#[tokio::test]
async fn damaged_and_hostile_images_are_never_clean_and_stay_bounded() {
    let floppy = || {
        built(
            "mkfs.fat -C floppy.img 1440 >/dev/null
            mcopy -i floppy.img payload.exe ::/a.exe
            mcopy -i floppy.img notes.txt ::/b.txt
            mmd -i floppy.img ::/Invoice
            mmd -i floppy.img ::/Invoice/loop",
            "floppy.img",
        )
    };
    // Never clean: unscannable, or infected where the payload was still found elsewhere.
    let unscannable = |report: &Report, reason: Reason, words: &str| {
        assert_ne!(report.verdict, Verdict::Clean, "{report:#?}");
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.reason == reason && p.message.contains(words)),
            "{words}: {report:#?}"
        );
    };

    // A chain that loops: a.exe's third cluster points back to its first.
    let mut image = floppy();
    let first = usize::from(u16::from_le_bytes({
        let at = entry_at(&image, b"A       EXE") + 26;
        [image[at], image[at + 1]]
    }));
    set_fat12(&mut image, first + 2, first as u16);
    unscannable(
        &scanned("loop.img", image).await,
        Reason::Corrupt,
        "already read",
    );

    // Cross-linked files: b.txt starts on a.exe's first cluster.
    let mut image = floppy();
    let b = entry_at(&image, b"B       TXT") + 26;
    image[b..b + 2].copy_from_slice(&(first as u16).to_le_bytes());
    let report = scanned("cross.img", image).await;
    assert!(
        report.problems.iter().any(|p| p.path == "cross.img/b.txt"
            && p.reason == Reason::Corrupt
            && p.message.contains("already read")),
        "{report:#?}"
    );

    // A directory that contains itself: Invoice/loop points back to Invoice.
    let mut image = floppy();
    let invoice = entry_at(&image, b"INVOICE    ") + 26;
    let cluster = [image[invoice], image[invoice + 1]];
    let lp = entry_at(&image, b"LOOP       ") + 26;
    image[lp..lp + 2].copy_from_slice(&cluster);
    unscannable(
        &scanned("dirloop.img", image).await,
        Reason::Corrupt,
        "loops",
    );

    // A dynamic VHD of a terabyte with nothing written: read in an instant, and reported.
    let sparse = built(
        "qemu-img create -q -f vpc -o subformat=dynamic big.vhd 1T",
        "big.vhd",
    );
    assert!(sparse.len() < 16 << 20);
    unscannable(
        &scanned("big.vhd", sparse).await,
        Reason::Unsupported,
        "no partition table",
    );

    // Cut short: a partition that ends past the disk, a dynamic VHD whose blocks are gone.
    let mbr = built(MBR_FAT32, "mbr.img");
    unscannable(
        &scanned("cut.img", mbr[..8 << 20].to_vec()).await,
        Reason::Corrupt,
        "past the end",
    );
    let dynamic = built(
        &format!(
            "{MBR_FAT32}\nqemu-img convert -q -f raw -O vpc -o subformat=dynamic mbr.img d.vhd"
        ),
        "d.vhd",
    );
    let footer = dynamic[dynamic.len() - 512..].to_vec();
    let cut = [&dynamic[..dynamic.len() / 2], &footer[..]].concat();
    let report = scanned("cut.vhd", cut).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert!(
        report.problems.iter().any(|p| p.reason == Reason::Corrupt),
        "{report:#?}"
    );

    // A VHDX whose headers fail their checksums.
    let mut vhdx = built(
        &format!("{MBR_FAT32}\nqemu-img convert -q -f raw -O vhdx mbr.img d.vhdx"),
        "d.vhdx",
    );
    vhdx[(64 << 10) + 100] ^= 1;
    vhdx[(128 << 10) + 100] ^= 1;
    unscannable(&scanned("bad.vhdx", vhdx).await, Reason::Corrupt, "headers");

    // A partition with a file system this reader does not walk is never taken as empty:
    // a small one is scanned whole (a tar written into it is opened), a large one reported.
    let linux = built(
        "truncate -s 8M l.img
        printf 'start=2048, type=83\\n' | sfdisk -q l.img
        tar -cf p.tar payload.exe
        dd if=p.tar of=l.img bs=1024 seek=1024 conv=notrunc status=none",
        "l.img",
    );
    assert_found_at(
        &scanned("linux.img", linux).await,
        &["linux.img/part-1/payload.exe".into()],
    );
    let large = built(
        "truncate -s 100M l.img
        printf 'start=2048, type=83\\n' | sfdisk -q l.img
        printf 'an ext4 superblock, say' | dd of=l.img bs=1024 seek=1025 conv=notrunc status=none",
        "l.img",
    );
    unscannable(
        &scanned("large.img", large).await,
        Reason::Unsupported,
        "part-1",
    );
}

#[tokio::test]
async fn exfat_volumes_give_files_by_their_path() {
    // Written by the exFAT FUSE driver (as root it mounts block devices only: a loop device
    // stands for the image): a long name (several name entries), a file of many clusters, a
    // folder.
    let image = built(
        "truncate -s 8M x.img
        mkfs.exfat x.img >/dev/null
        mkdir m
        dev=$(losetup -f --show x.img)
        fuse_mount m mount.exfat-fuse -d \"$dev\" m
        trap 'fuse_unmount m; losetup -d \"$dev\"' EXIT
        mkdir -p 'm/Invoices 2026'
        cp notes.txt m/notes.txt
        cp payload.exe 'm/Invoices 2026/Quarterly report for the board.exe'",
        "x.img",
    );
    assert_found_at(
        &scanned("x.img", image.clone()).await,
        &["x.img/Invoices 2026/Quarterly report for the board.exe".into()],
    );
    // On a partitioned disk.
    let partitioned = built(
        "truncate -s 16M d.img
        printf 'start=2048, type=7\\n' | sfdisk -q d.img
        dd if=/dev/zero of=p.img bs=1M count=15 status=none
        mkfs.exfat p.img >/dev/null
        mkdir m
        dev=$(losetup -f --show p.img)
        fuse_mount m mount.exfat-fuse -d \"$dev\" m
        cp payload.exe m/report.exe
        fuse_unmount m
        losetup -d \"$dev\"
        dd if=p.img of=d.img bs=1M seek=1 conv=notrunc status=none",
        "d.img",
    );
    assert_found_at(
        &scanned("d.img", partitioned).await,
        &["d.img/part-1/report.exe".into()],
    );
}

#[tokio::test]
async fn a_squashfs_of_one_block_shared_by_many_files_stops_on_the_ratio() {
    // mksquashfs stores identical files once: a hundred 1 MiB files cost one block of the
    // image, and expanding them all is a bomb.
    let bomb = built(
        "mkdir r
        printf 'the same line, again and again.%.0s\\n' $(seq 1 32768) > r/f0
        for i in $(seq 1 99); do cp r/f0 r/f$i; done
        mksquashfs r bomb.sqfs -comp xz -noappend -quiet >/dev/null",
        "bomb.sqfs",
    );
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    let report = scanned("bomb.sqfs", bomb).await;
    crate::testutil::assert_limit(&report, scan_core::Limit::MaxCompressionRatio);
}

/// Rewrites a bridge disc's volume recognition sequence without its ISO 9660 descriptors: what
/// a UDF-only mastering tool writes (Windows' `oscdimg -u2`), so only the UDF side is left.
const STRIP_ISO9660: &str = "python3 - disc.iso <<'PY'
import sys
path = sys.argv[1]
disc = bytearray(open(path, 'rb').read())
S = 2048
vrs = [bytes(disc[(16 + i) * S:(17 + i) * S]) for i in range(16)]
kept = [d for d in vrs if d[1:6] in (b'BEA01', b'NSR02', b'NSR03', b'TEA01')]
disc[16 * S:32 * S] = bytes(16 * S)
for i, d in enumerate(kept):
    disc[(16 + i) * S:(17 + i) * S] = d
open(path, 'wb').write(disc)
PY";

/// A UDF-only disc: genisoimage's UDF 1.02 side, a folder and two files.
pub(crate) fn udf_only_disc() -> Vec<u8> {
    built(
        &format!(
            "mkdir -p root/Invoice
            cp notes.txt root/notes.txt
            cp payload.exe root/Invoice/report.exe
            genisoimage -quiet -udf -o disc.iso root
            {STRIP_ISO9660}"
        ),
        "disc.iso",
    )
}

#[tokio::test]
async fn udf_discs_without_iso9660_give_files_by_their_path() {
    let disc = udf_only_disc();
    assert_ne!(&disc[0x8001..0x8006], b"CD001");
    let report = scanned("disc.iso", disc).await;
    assert_found_at(&report, &["disc.iso/Invoice/report.exe".into()]);
    // The disc and both files: every file was read, each once.
    assert_eq!(report.objects, 3, "{report:#?}");

    // Empty volumes of each UDF revision mkudffs writes for rewritable media, in 2 KiB and
    // 512-byte blocks: the volume opens and holds nothing.
    for (args, name) in [
        ("-b 2048 -r 1.02", "v102.udf"),
        ("-b 2048 -r 1.50", "v150.udf"),
        ("-b 2048 -r 2.01", "v201.udf"),
        ("-b 512 -r 2.01", "b512.udf"),
    ] {
        let image = built(
            &format!("mkudffs --new-file -m hd {args} {name} 4096 >/dev/null"),
            name,
        );
        let report = scanned(name, image).await;
        assert_eq!(report.verdict, Verdict::Clean, "{name}: {report:#?}");
        assert!(report.problems.is_empty(), "{name}: {report:#?}");
    }
    // Named streams hide data beside a file's main stream: an extended file entry whose stream
    // directory is set is not read, and says so (here the root's, so nothing can be listed).
    let mut streams = built(
        "mkudffs --new-file -m hd -b 2048 -r 2.01 streams.udf 4096 >/dev/null",
        "streams.udf",
    );
    let at = streams
        .chunks_exact(2048)
        // The root folder's (file type 4); mkudffs puts the file set's system streams first.
        .position(|block| block[..2] == 266u16.to_le_bytes() && block[27] == 4)
        .expect("the root's extended file entry")
        * 2048;
    streams[at + 152..at + 156].copy_from_slice(&2048u32.to_le_bytes());
    streams[at + 156..at + 160].copy_from_slice(&3u32.to_le_bytes());
    streams[at + 4] = streams[at..at + 16]
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != 4)
        .fold(0u8, |sum, (_, &b)| sum.wrapping_add(b));
    let report = scanned("streams.udf", streams).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.reason == Reason::Unsupported && p.message.contains("named streams")),
        "{report:#?}"
    );
    // A CD-RW's sparable partition and a DVD-R's virtual one are not read, and say so.
    for (args, name) in [("-m cdrw", "cdrw.udf"), ("-m dvdr -r 2.50", "dvdr.udf")] {
        let image = built(
            &format!("mkudffs --new-file {args} {name} 8192 >/dev/null"),
            name,
        );
        let report = scanned(name, image).await;
        assert_eq!(report.verdict, Verdict::Unscannable, "{name}: {report:#?}");
        assert_eq!(report.problems[0].reason, Reason::Unsupported, "{name}");
    }
}

/// The root directory's block in its partition, from the file set descriptor (tag 256).
fn udf_root_block(disc: &[u8]) -> u32 {
    let fsd = disc
        .chunks_exact(2048)
        .find(|block| block[..2] == [0, 1])
        .expect("a file set descriptor");
    u32::from_le_bytes(fsd[404..408].try_into().unwrap())
}

#[tokio::test]
async fn damaged_and_looping_udf_discs_are_never_clean() {
    let disc = udf_only_disc();
    // The folder's identifier made to name the root: the tree loops.
    let mut looping = disc.clone();
    let fid = looping
        .windows(8)
        .position(|w| w == b"\x08Invoice")
        .expect("the folder's identifier")
        - 38;
    let root = udf_root_block(&looping);
    looping[fid + 24..fid + 28].copy_from_slice(&root.to_le_bytes());
    let report = scanned("loop.iso", looping).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.reason == Reason::Corrupt && p.message.contains("loops")),
        "{report:#?}"
    );
    // The root's entry broken (its tag's checksum fails): nothing can be listed.
    let mut broken = disc.clone();
    let fsd = broken
        .chunks_exact(2048)
        .position(|block| block[..2] == [0, 1])
        .unwrap();
    // Partition blocks count from the partition's start, which the FSD's own tag names.
    let fsd_location =
        u32::from_le_bytes(broken[fsd * 2048 + 12..fsd * 2048 + 16].try_into().unwrap());
    let partition_start = fsd - fsd_location as usize;
    let root_at = (partition_start + udf_root_block(&broken) as usize) * 2048;
    broken[root_at + 4] ^= 0xFF;
    let report = scanned("broken.iso", broken).await;
    assert_eq!(report.verdict, Verdict::Unscannable, "{report:#?}");
    assert_eq!(report.problems[0].reason, Reason::Corrupt, "{report:#?}");
    // Cut inside the payload: never clean.
    let head = &payload()[..32];
    let at = disc
        .windows(32)
        .position(|w| w == head)
        .expect("the payload's bytes");
    let cut = disc[..at + 1000].to_vec();
    let report = scanned("cut.iso", cut).await;
    assert_ne!(report.verdict, Verdict::Clean, "{report:#?}");
    assert!(!report.problems.is_empty(), "{report:#?}");
}

#[tokio::test]
async fn a_bridge_discs_udf_side_is_read_for_the_files_only_it_names() {
    // pycdlib masters a UDF 2.60 bridge disc whose ISO 9660 side lists only the notes: the
    // payload is named on the UDF side alone, the side Windows shows when it mounts the disc.
    let python = test_support::service_or_skip!("VERDICT_TEST_CARRIER_PYTHON");
    let disc = built(
        &format!(
            "{python} - <<'PY'
import io, pycdlib
disc = pycdlib.PyCdlib()
disc.new(udf='2.60')
notes = open('notes.txt', 'rb').read()
payload = open('payload.exe', 'rb').read()
disc.add_fp(io.BytesIO(notes), len(notes), '/NOTES.TXT;1', udf_path='/notes.txt')
disc.add_directory(udf_path='/Invoice')
disc.add_fp(io.BytesIO(payload), len(payload), udf_path='/Invoice/report.exe')
disc.write('bridge.iso')
PY"
        ),
        "bridge.iso",
    );
    assert_eq!(&disc[0x8001..0x8006], b"CD001");
    let report = scanned("bridge.iso", disc).await;
    assert_found_at(&report, &["bridge.iso/Invoice/report.exe".into()]);
    // The notes are on both sides, on the same bytes: read once, from the ISO 9660 side (the
    // disc, the notes and the payload).
    assert_eq!(report.objects, 3, "{report:#?}");
}
