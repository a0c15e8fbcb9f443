//! E-mail: messages written by Python's `email` package (the generator real mail tools use),
//! and hand-made ones for what generators do not write: mbox files, uuencoded bodies,
//! bombs of parts and of nesting.

use std::io::Write;
use std::process::{Command, Stdio};

use scan_core::testing::{self, eicar};
use scan_core::{Limit, Verdict};

use crate::testutil::{assert_limit, paths, scan, scanner};

/// Runs a Python script with the payload's hex on stdin and returns what it prints.
fn python(script: &str, payload: &[u8]) -> Vec<u8> {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(hex::encode(payload).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed");
    out.stdout
}

/// A message as a mail client sends it: text and HTML alternatives (the HTML smuggling a file
/// in a data URI), a zip attachment, a quoted-printable attachment, and a forwarded message
/// with an attachment of its own.
const MESSAGE: &str = r#"
import sys, io, zipfile, base64
from email.message import EmailMessage
from email import policy
payload = bytes.fromhex(sys.stdin.read())
z = io.BytesIO()
with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
    f.writestr("payload.exe", payload)
inner = EmailMessage()
inner["From"] = "a@example.com"; inner["Subject"] = "fwd"
inner.set_content("see attached")
inner.add_attachment(payload, maintype="application", subtype="octet-stream", filename="inner.exe")
m = EmailMessage()
m["From"] = "Billing <billing@example.com>"; m["To"] = "you@example.com"
m["Subject"] = "Invoice"
m.set_content("Please find the invoice attached.\n")
html = '<p>Invoice</p><a href="data:application/octet-stream;base64,' + base64.b64encode(payload).decode() + '">x</a>'
m.add_alternative(html, subtype="html")
m.add_attachment(z.getvalue(), maintype="application", subtype="zip", filename="invoice.zip")
m.add_attachment(payload, maintype="text", subtype="plain", filename="notes.txt", cte="quoted-printable")
m.add_attachment(inner)
sys.stdout.buffer.write(m.as_bytes(policy=policy.SMTP))
"#;

#[tokio::test]
async fn a_mail_clients_message_yields_every_attachment_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let eml = python(MESSAGE, &eicar());
    let report = scan(&scanner(dir.path()), "mail.eml", eml).await;
    assert_eq!(report.verdict, Verdict::Infected, "{report:#?}");
    assert_eq!(report.file_type, "email");
    let found = paths(&report);
    assert!(
        found.contains(&"mail.eml/invoice.zip/payload.exe"),
        "{found:?}"
    );
    assert!(found.contains(&"mail.eml/notes.txt"), "{found:?}");
    assert!(found.contains(&"mail.eml/inner.exe"), "{found:?}");
    let html = found
        .iter()
        .find(|p| p.starts_with("mail.eml/part-2/data@"))
        .unwrap_or_else(|| panic!("no data URI in the HTML part: {found:?}"));
    assert_eq!(found.len(), 4, "{found:?} ({html})");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[tokio::test]
async fn mbox_files_uuencode_and_binhex_in_mail() {
    let dir = tempfile::tempdir().unwrap();
    let scanner = scanner(dir.path());
    let one = python(
        r#"
import sys
from email.message import EmailMessage
from email import policy
p = bytes.fromhex(sys.stdin.read())
for name in ("a.exe", "b.exe"):
    m = EmailMessage(); m["From"] = "x@example.com"; m["Subject"] = name
    m.set_content("From the team: see attached.\n")
    m.add_attachment(p, maintype="application", subtype="octet-stream", filename=name)
    sys.stdout.buffer.write(b"From x@example.com Thu Jul 31 13:49:50 2008\n")
    sys.stdout.buffer.write(m.as_bytes(policy=policy.default.clone(linesep="\n")) + b"\n")
"#,
        &eicar(),
    );
    let report = scan(&scanner, "box.mbox", one).await;
    assert_eq!(
        paths(&report),
        [
            "box.mbox/message-1.eml/a.exe",
            "box.mbox/message-2.eml/b.exe"
        ],
        "{report:#?}"
    );

    // A uuencoded file inside a plain-text body, as old mailers and news readers send it.
    let uu = python(
        r#"
import sys, binascii
p = bytes.fromhex(sys.stdin.read())
lines = b"".join(binascii.b2a_uu(p[i:i+45]) for i in range(0, len(p), 45))
sys.stdout.buffer.write(b"From: x@example.com\nTo: y@example.com\nSubject: file\n\nHere it is:\n\nbegin 644 eicar.com\n" + lines + b"`\nend\n\nbye\n")
"#,
        &eicar(),
    );
    let report = scan(&scanner, "uu.eml", uu).await;
    assert_eq!(paths(&report), ["uu.eml/eicar.com"], "{report:#?}");

    let mut hqx =
        b"From: x@example.com\nSubject: mac file\nContent-Type: application/mac-binhex40\n\n"
            .to_vec();
    hqx.extend_from_slice(&testing::binhex("payload.exe", &eicar()));
    let report = scan(&scanner, "mac.eml", hqx).await;
    assert_eq!(
        paths(&report),
        ["mac.eml/part-1/payload.exe"],
        "{report:#?}"
    );
}

#[tokio::test]
async fn a_message_that_mentions_other_formats_is_still_read_as_mail() {
    let dir = tempfile::tempdir().unwrap();
    // "%PDF-" and the BinHex marker near the top must not turn the message into a PDF or a
    // BinHex file, which would leave its base64 attachment undecoded.
    let eml = python(
        r#"
import sys
from email.message import EmailMessage
from email import policy
p = bytes.fromhex(sys.stdin.read())
m = EmailMessage(); m["From"] = "x@example.com"; m["Subject"] = "%PDF-1.7 1 0 obj"
m.set_content("(This file must be converted with BinHex 4.0)\\n")
m.add_attachment(p, maintype="application", subtype="octet-stream", filename="a.exe")
sys.stdout.buffer.write(m.as_bytes())
"#,
        &eicar(),
    );
    let report = scan(&scanner(dir.path()), "polyglot.eml", eml).await;
    assert_eq!(paths(&report), ["polyglot.eml/a.exe"], "{report:#?}");
}

#[tokio::test]
async fn a_hundred_thousand_parts_stop_on_the_file_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut eml =
        b"From: a@b\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n".to_vec();
    for _ in 0..100_000 {
        eml.extend_from_slice(b"--b\nContent-Transfer-Encoding: base64\n\naGVsbG8=\n");
    }
    eml.extend_from_slice(b"--b--\n");
    let report = scan(&scanner(dir.path()), "parts.eml", eml).await;
    assert_limit(&report, Limit::MaxFiles);
}

#[tokio::test]
async fn nesting_parts_without_end_stops_on_the_depth_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut eml = b"From: a@b\nMIME-Version: 1.0\n".to_vec();
    for level in 0..100_000 {
        eml.extend_from_slice(
            format!("Content-Type: multipart/mixed; boundary=b{level}\n\n--b{level}\n").as_bytes(),
        );
    }
    let report = scan(&scanner(dir.path()), "deep.eml", eml).await;
    assert_limit(&report, Limit::MaxRecursion);
}
