//! Lambent's runtime clients, embedded in the binary and written to `<data-dir>/runtimes/` at
//! start-up (world-readable: sandboxes run as an unprivileged user and see it at `/var/runtime`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const FILES: &[(&str, &str)] = &[
    (
        "python/bootstrap.py",
        include_str!("../../../runtimes/python/bootstrap.py"),
    ),
    (
        "python/zygote.py",
        include_str!("../../../runtimes/python/zygote.py"),
    ),
    (
        "node/bootstrap.mjs",
        include_str!("../../../runtimes/node/bootstrap.mjs"),
    ),
];

/// Writes the runtime clients under `dir`, replacing files whose content differs.
pub fn install(dir: &Path) -> std::io::Result<()> {
    for (name, content) in FILES {
        let path = dir.join(name);
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)?;
        for d in [dir, parent] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
        }
        if std::fs::read(&path).is_ok_and(|old| old == content.as_bytes()) {
            continue;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, content)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}
