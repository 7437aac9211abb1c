//! Python environments for tests that drive Lambent with real AWS clients (boto3, the AWS CLI).

/// A Python virtual environment with `packages` from PyPI, made once per machine under
/// `/tmp/lambent-test-venv-<hash of the package list>` (built aside and renamed into place, so
/// concurrent tests and interrupted runs never see half of one). Returns its directory.
pub fn venv(packages: &[&str]) -> std::path::PathBuf {
    use std::hash::{Hash, Hasher};
    use std::process::Command;
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    packages.hash(&mut hasher);
    let dir = std::path::PathBuf::from(format!("/tmp/lambent-test-venv-{:016x}", hasher.finish()));
    if dir.join("bin/python").exists() {
        return dir;
    }
    let building =
        std::path::PathBuf::from(format!("{}.building-{}", dir.display(), std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed (scripts/test installs python3-venv; PyPI must be reachable):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&building),
        "python3 -m venv",
    );
    run(
        Command::new(building.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(packages),
        &format!("pip install {}", packages.join(" ")),
    );
    // A venv's scripts name their interpreter by absolute path: fix them up for the final name.
    for entry in std::fs::read_dir(building.join("bin")).unwrap() {
        let path = entry.unwrap().path();
        if let Ok(text) = std::fs::read_to_string(&path) {
            let from = building.display().to_string();
            if text.contains(&from) {
                std::fs::write(&path, text.replace(&from, &dir.display().to_string())).unwrap();
            }
        }
    }
    match std::fs::rename(&building, &dir) {
        Ok(()) => {}
        Err(_) if dir.join("bin/python").exists() => {
            let _ = std::fs::remove_dir_all(&building);
        }
        Err(e) => panic!("cannot move the venv into place: {e}"),
    }
    dir
}
