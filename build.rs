//! Embeds the dashboard (`web/`) in the binary: every file with its content type, a content
//! hash (the ETag) and a gzip copy made here, so that serving costs no compression at runtime.

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
