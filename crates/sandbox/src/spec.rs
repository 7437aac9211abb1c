//! [`SandboxSpec`], what one sandbox should run with what limits, its validation, and the
//! environment the program gets.

use crate::{Isolation, SandboxError};
use std::path::PathBuf;

/// Longest sandbox id (it names cgroup directories).
const MAX_ID_LEN: usize = 64;

/// What to run in one sandbox, and with what limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Unique among live sandboxes; `[a-z0-9-]`, at most 64 characters.
    pub id: String,
    /// Host directory with the function's code, seen read-only at `/var/task`. It (not its
    /// parents) must be readable by [`crate::SANDBOX_UID`], e.g. mode 0755.
    pub code_dir: PathBuf,
    /// Host directory with Lambent's runtime clients, seen read-only at `/var/runtime`.
    pub runtime_dir: PathBuf,
    /// The program and its arguments; `argv[0]` is an absolute path as seen inside the sandbox
    /// (`/usr/bin/python3`, `/var/task/bootstrap`).
    pub argv: Vec<String>,
    /// The complete environment (a repeated key: the last value wins). `spawn` adds
    /// `AWS_LAMBDA_RUNTIME_API` (and `AWS_ENDPOINT_URL`, see [`SandboxSpec::aws_endpoint`]).
    pub env: Vec<(String, String)>,
    /// Memory limit in MiB, swap included (no swap beyond it). CPU weight follows it.
    pub memory_mb: u32,
    /// Most processes and threads at once.
    pub pids_max: u32,
    /// Size of the private writable `/tmp` (and of `/dev/shm`), in MiB, charged to the memory limit.
    pub tmp_mb: u32,
    /// `false`: loopback only (a fresh network namespace). `true`: outbound network through a
    /// user-mode stack (`network.rs`; needs slirp4netns), the loopback still its own.
    pub allow_network: bool,
    /// The interpreter `argv` runs, when it is one Lambent can start ahead of time (a Python
    /// zygote, a Node.js stem cell): the sandbox may then be born from one instead of an
    /// `execve`, running the same runtime client with the same environment. `None`: always
    /// `execve`.
    pub interpreter: Option<Interpreter>,
    /// Also point `AWS_ENDPOINT_URL` at the listener (`http://<AWS_LAMBDA_RUNTIME_API>`): the
    /// caller serves AWS APIs there beside the Runtime API.
    pub aws_endpoint: bool,
    /// The namespace (tenant) the sandbox belongs to: its cgroup lives under the namespace's
    /// (`<parent>/ns-<namespace>/`, see [`crate::Host::set_tenant_limits`]), and nothing made
    /// for another namespace's function (a package zygote) serves it. `None`: right under
    /// the parent, outside every namespace's share.
    pub namespace: Option<String>,
}

/// Interpreters that can be started before their function is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interpreter {
    /// `python3 /var/runtime/python/bootstrap.py`.
    Python,
    /// `node /var/runtime/node/bootstrap.mjs`.
    Node,
}

fn invalid(msg: String) -> SandboxError {
    SandboxError::InvalidSpec(msg)
}

impl SandboxSpec {
    /// Checks everything that can be checked before forking.
    pub(crate) fn validate(&self, isolation: Isolation) -> Result<(), SandboxError> {
        let id_ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if self.id.is_empty() || self.id.len() > MAX_ID_LEN || !self.id.chars().all(id_ok) {
            return Err(invalid(format!(
                "id {:?} must be 1 to {MAX_ID_LEN} characters of a-z, 0-9 and -",
                self.id
            )));
        }

        let Some(program) = self.argv.first() else {
            return Err(invalid("argv is empty".into()));
        };
        if isolation == Isolation::Full && !program.starts_with('/') {
            return Err(invalid(format!(
                "argv[0] {program:?} must be an absolute path inside the sandbox"
            )));
        }
        if let Some(arg) = self.argv.iter().find(|a| a.contains('\0')) {
            return Err(invalid(format!("argument {arg:?} contains a NUL byte")));
        }
        for (key, value) in &self.env {
            if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
                return Err(invalid(format!(
                    "environment variable {key:?} is malformed"
                )));
            }
        }
        for (name, value) in [
            ("memory_mb", self.memory_mb),
            ("pids_max", self.pids_max),
            ("tmp_mb", self.tmp_mb),
        ] {
            if value == 0 {
                return Err(invalid(format!("{name} must be at least 1")));
            }
        }
        for (name, dir) in [
            ("code_dir", &self.code_dir),
            ("runtime_dir", &self.runtime_dir),
        ] {
            if !dir.is_absolute() || !dir.is_dir() {
                return Err(invalid(format!(
                    "{name} {} is not an absolute path to a directory",
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    /// `KEY=value` strings: the spec's environment (last value of a repeated key wins, at the
    /// key's first position), `AWS_LAMBDA_RUNTIME_API=<runtime_api>` and, with
    /// [`SandboxSpec::aws_endpoint`], `AWS_ENDPOINT_URL=http://<runtime_api>`.
    pub(crate) fn environment(&self, runtime_api: &str) -> Vec<String> {
        let mut vars: Vec<(&str, &str)> = Vec::with_capacity(self.env.len() + 2);
        let pairs = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let endpoint = format!("http://{runtime_api}");
        let endpoint = self
            .aws_endpoint
            .then_some(("AWS_ENDPOINT_URL", endpoint.as_str()));
        let platform = [("AWS_LAMBDA_RUNTIME_API", runtime_api)]
            .into_iter()
            .chain(endpoint);
        for (key, value) in pairs.chain(platform) {
            match vars.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => vars.push((key, value)),
            }
        }
        vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &std::path::Path) -> SandboxSpec {
        SandboxSpec {
            id: "sb-0a1".into(),
            code_dir: dir.into(),
            runtime_dir: dir.into(),
            argv: vec!["/usr/bin/python3".into()],
            env: vec![("A".into(), "1".into())],
            memory_mb: 128,
            pids_max: 64,
            tmp_mb: 16,
            allow_network: false,
            interpreter: None,
            aws_endpoint: false,
            namespace: None,
        }
    }

    #[test]
    fn a_good_spec_passes() {
        let tmp = tempfile::tempdir().unwrap();
        spec(tmp.path()).validate(Isolation::Full).unwrap();
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let tmp = tempfile::tempdir().unwrap();
        type Change = Box<dyn Fn(&mut SandboxSpec)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|s| s.id = "Sb_1".into()), "a-z, 0-9 and -"),
            (Box::new(|s| s.id = String::new()), "a-z, 0-9 and -"),
            (Box::new(|s| s.id = "a".repeat(65)), "a-z, 0-9 and -"),
            (Box::new(|s| s.argv.clear()), "argv is empty"),
            (Box::new(|s| s.argv[0] = "python3".into()), "absolute path"),
            (Box::new(|s| s.argv.push("a\0b".into())), "NUL"),
            (
                Box::new(|s| s.env.push(("A=B".into(), String::new()))),
                "malformed",
            ),
            (
                Box::new(|s| s.memory_mb = 0),
                "memory_mb must be at least 1",
            ),
            (
                Box::new(|s| s.code_dir = "/nonexistent/code".into()),
                "code_dir",
            ),
            (
                Box::new(|s| s.runtime_dir = "relative".into()),
                "runtime_dir",
            ),
        ];
        for (change, expected) in cases {
            let mut s = spec(tmp.path());
            change(&mut s);
            let msg = s.validate(Isolation::Full).unwrap_err().to_string();
            assert!(
                msg.contains(expected),
                "{msg:?} should mention {expected:?}"
            );
        }
    }

    #[test]
    fn insecure_mode_allows_a_program_on_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = spec(tmp.path());
        s.argv[0] = "python3".into();
        s.validate(Isolation::Insecure).unwrap();
    }

    #[test]
    fn environment_adds_the_runtime_api_and_last_value_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = spec(tmp.path());
        s.env = vec![
            ("PATH".into(), "/user".into()),
            ("B".into(), "2".into()),
            ("PATH".into(), "/platform".into()),
            ("AWS_LAMBDA_RUNTIME_API".into(), "spoofed".into()),
        ];
        assert_eq!(
            s.environment("127.0.0.1:9001"),
            vec![
                "PATH=/platform",
                "B=2",
                "AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001"
            ]
        );
        s.aws_endpoint = true;
        s.env = vec![("AWS_ENDPOINT_URL".into(), "http://spoofed".into())];
        assert_eq!(
            s.environment("127.0.0.1:9001"),
            vec![
                "AWS_ENDPOINT_URL=http://127.0.0.1:9001",
                "AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001"
            ]
        );
    }
}
