//! Carrier formats, one module each. A format identifies its carrier by content (never by name)
//! and yields the members it holds through [`members::Members`], the contract in
//! `members.rs`; the walker (`crate::expand`) alone owns limits, depth, paths, problems and
//! engines. Adding a format is its module plus one line in
//! [`FORMATS`]. Carriers that start inside an object no format opens (an archive in an
//! executable, a zip appended to an image) are found by [`embedded`], which the walker asks.

mod ar;
mod arj;
mod binhex;
mod cab;
mod chm;
mod cpio;
mod datauri;
mod disk;
pub(crate) mod embedded;
mod iso;
pub(crate) mod literals;
pub(crate) mod members;
mod mime;
mod mscompress;
mod nsis;
mod office_crypto;
mod ole;
mod onenote;
mod pdf;
mod pdf_crypt;
#[cfg(feature = "rar")]
mod rar;
mod rpm;
mod rtf;
mod script;
mod sevenz;
mod sis;
mod squashfs;
mod stream;
mod tar;
pub(crate) mod text;
mod tnef;
pub(crate) mod upx;
mod zip;

use members::Members;

/// One carrier format.
pub(crate) struct Format {
    /// A short lower-case name, shown as the object's type: `zip`, `email`, `pdf`...
    pub(crate) name: &'static str,
    /// Whether `data` is this carrier, judged from its content alone.
    pub(crate) identify: fn(&[u8]) -> bool,
    /// Yields the carrier's members (and records what could not be read of it).
    pub(crate) expand: fn(&mut Members<'_>, &[u8]),
}

/// Every format, in the order identification tries them: magic numbers at offset 0 first, then
/// checksummed or validated headers (tar, ISO 9660 at 0x8001, raw LZMA's plausible header),
/// then the text formats whose signs are weaker. Mail comes before PDF and
/// BinHex, whose markers may sit a little way in: a message that mentions `%PDF-` in its first
/// kilobyte is still a message (its parts are identified in turn), so no attachment is hidden
/// by making the message look like something else.
pub(crate) static FORMATS: &[Format] = &[
    zip::FORMAT,
    sevenz::FORMAT,
    #[cfg(feature = "rar")]
    rar::FORMAT,
    stream::GZIP,
    stream::BZIP2,
    stream::XZ,
    stream::ZSTD,
    stream::LZ4,
    stream::LZIP,
    stream::COMPRESS,
    ar::FORMAT,
    arj::FORMAT,
    cpio::FORMAT,
    cpio::ODC,
    cpio::BINARY,
    ole::FORMAT,
    onenote::FORMAT,
    tnef::FORMAT,
    cab::FORMAT,
    sis::FORMAT,
    nsis::FORMAT,
    chm::FORMAT,
    mscompress::SZDD,
    mscompress::KWAJ,
    rtf::FORMAT,
    rpm::FORMAT,
    tar::FORMAT,
    disk::VHD,
    disk::VHDX,
    squashfs::FORMAT,
    iso::FORMAT,
    disk::UDF,
    // After ISO 9660: a hybrid ISO (bootable from a USB stick) has an MBR too, and its ISO
    // view is the one a user opens.
    disk::RAW,
    stream::LZMA,
    mime::FORMAT,
    pdf::FORMAT,
    binhex::FORMAT,
    datauri::FORMAT,
    script::FORMAT,
];

/// The format that opens `data`, if any. `script` is the script format's answer when it is
/// known already (the spool's writer watched the object for payload literals as it wrote it).
pub(crate) fn identify(data: &[u8], script: Option<bool>) -> Option<&'static Format> {
    FORMATS.iter().find(|format| match script {
        Some(known) if format.name == script::FORMAT.name => known,
        _ => (format.identify)(data),
    })
}
