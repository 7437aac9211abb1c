//! Code zips for tests and benchmarks: a function's files packed as `lambent deploy` uploads
//! them, `bootstrap` executable.

use std::io::Write;

/// A code zip of `files` (name, contents); an entry named `bootstrap` is executable (0755), the
/// others 0644.
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        let mode = if *name == "bootstrap" { 0o755 } else { 0o644 };
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(mode);
        w.start_file(*name, opts).expect("zip entry");
        w.write_all(body).expect("zip write");
    }
    w.finish().expect("zip finish").into_inner()
}

/// [`zip_of`] for text files.
pub fn zip_of_text(files: &[(&str, &str)]) -> Vec<u8> {
    let bytes: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_bytes())).collect();
    zip_of(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_is_executable_and_contents_round_trip() {
        let z = zip_of_text(&[("bootstrap", "#!/bin/sh\n"), ("app.py", "x = 1\n")]);
        let mut a = zip::ZipArchive::new(std::io::Cursor::new(z)).unwrap();
        let mode = |a: &mut zip::ZipArchive<_>, n: &str| a.by_name(n).unwrap().unix_mode();
        assert_eq!(mode(&mut a, "bootstrap").map(|m| m & 0o777), Some(0o755));
        assert_eq!(mode(&mut a, "app.py").map(|m| m & 0o777), Some(0o644));
        let mut s = String::new();
        std::io::Read::read_to_string(&mut a.by_name("app.py").unwrap(), &mut s).unwrap();
        assert_eq!(s, "x = 1\n");
    }
}
