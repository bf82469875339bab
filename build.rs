//! Embeds the dashboard (`web/`) in the binary: every file with its content type, a content
//! hash (the ETag) and a gzip copy made here, so that serving costs no compression at runtime.
//! And turns the IEEE MAC address registries (Debian's `ieee-data`) into the compact vendor
//! table `devices::vendor` reads (format documented there).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    println!("cargo:rerun-if-changed=web");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let mut files = Vec::new();
    collect(&root, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for (i, file) in files.iter().enumerate() {
        println!("cargo:rerun-if-changed={}", file.display());
        let rel = file.strip_prefix(&root).expect("under web/");
        let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
        let Some(content_type) = content_type(file) else {
            continue;
        };
        let bytes = std::fs::read(file).expect("reading a web file");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&bytes).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let gz_path = out.join(format!("asset-{i}.gz"));
        std::fs::write(&gz_path, &gz).expect("writing a gzip copy");
        let _ = writeln!(
            table,
            "    Asset {{ path: {url:?}, content_type: {content_type:?}, etag: \"\\\"{:016x}\\\"\", body: include_bytes!({:?}), gzip: include_bytes!({:?}) }},",
            fnv1a(&bytes),
            file.display().to_string(),
            gz_path.display().to_string(),
        );
    }
    table.push(']');
    std::fs::write(out.join("assets.rs"), table).expect("writing assets.rs");
    vendor_table(&out);
}

/// Where the registries are: `TAPIR_IEEE_DATA`, else Debian's `ieee-data` directory.
const IEEE_DATA: &str = "/usr/share/ieee-data";

/// Reads MA-L (`oui.csv`, 24-bit prefixes), MA-M (`mam.csv`, 28), MA-S (`oui36.csv`, 36)
/// and the older IAB blocks (`iab.csv`, 36) and writes `vendors.bin`: a header of four
/// big-endian u32 counts (24-, 28- and 36-bit entries, names), the sorted entries of each
/// length (the prefix in 3, 4 or 5 bytes, then a 2-byte name index), the names' end
/// offsets (u32 each) and the names' UTF-8 bytes.
fn vendor_table(out: &Path) {
    println!("cargo:rerun-if-env-changed=TAPIR_IEEE_DATA");
    let dir = std::env::var("TAPIR_IEEE_DATA").unwrap_or_else(|_| IEEE_DATA.to_string());
    let dir = Path::new(&dir);
    let mut names: Vec<String> = Vec::new();
    let mut index: std::collections::HashMap<String, u16> = std::collections::HashMap::new();
    // (prefix bits, prefix, name index), one list per length.
    let mut by_len: [Vec<(u64, u16)>; 3] = Default::default();
    for (file, bits, slot) in [
        ("oui.csv", 24, 0),
        ("mam.csv", 28, 1),
        ("oui36.csv", 36, 2),
        ("iab.csv", 36, 2),
    ] {
        let path = dir.join(file);
        println!("cargo:rerun-if-changed={}", path.display());
        let mut reader = csv::Reader::from_path(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read the IEEE registry {}: {e}. Install Debian's ieee-data package \
                 (apt install ieee-data) or point TAPIR_IEEE_DATA at a directory holding \
                 oui.csv, mam.csv, oui36.csv and iab.csv",
                path.display()
            )
        });
        for record in reader.records() {
            let record = record.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let (Some(assignment), Some(name)) = (record.get(1), record.get(2)) else {
                continue;
            };
            let digits = (bits / 4) as usize;
            let Ok(prefix) = u64::from_str_radix(assignment.trim(), 16) else {
                continue;
            };
            if assignment.trim().len() != digits {
                continue;
            }
            let name = name.trim().to_string();
            let id = *index.entry(name.clone()).or_insert_with(|| {
                names.push(name);
                u16::try_from(names.len() - 1).expect("fewer than 65,536 vendor names")
            });
            by_len[slot].push((prefix, id));
        }
    }
    let mut bin = Vec::new();
    for list in &mut by_len {
        list.sort_unstable();
        list.dedup_by_key(|(prefix, _)| *prefix);
        bin.extend_from_slice(&(list.len() as u32).to_be_bytes());
    }
    bin.extend_from_slice(&(names.len() as u32).to_be_bytes());
    for (list, width) in by_len.iter().zip([3usize, 4, 5]) {
        for (prefix, id) in list {
            bin.extend_from_slice(&prefix.to_be_bytes()[8 - width..]);
            bin.extend_from_slice(&id.to_be_bytes());
        }
    }
    let mut end = 0u32;
    for name in &names {
        end += name.len() as u32;
        bin.extend_from_slice(&end.to_be_bytes());
    }
    for name in &names {
        bin.extend_from_slice(name.as_bytes());
    }
    std::fs::write(out.join("vendors.bin"), bin).expect("writing vendors.bin");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn content_type(path: &Path) -> Option<&'static str> {
    Some(match path.extension()?.to_str()? {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "png" => "image/png",
        _ => return None,
    })
}

/// FNV-1a, 64 bits: a content hash for ETags (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
