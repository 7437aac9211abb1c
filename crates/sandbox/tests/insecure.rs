//! `--insecure-no-sandbox`: a plain child process with the same contract (output pipe,
//! environment, runtime API listener, pidfd, kill, drop). Runs without root.

mod common;

use common::*;
use lambent_sandbox::{Isolation, SandboxError, SetupStep};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);
const PROBE: Duration = Duration::from_secs(20);

#[test]
fn runs_a_plain_process_with_the_same_contract() {
    within(LIMIT, || {
        let fx = Fixture::new(Isolation::Insecure);
        assert_eq!(fx.host.cgroup_version(), None);
        let layout = fx.host.layout(&fx.code, &fx.runtime);
        assert_eq!(layout.task_root, fx.code);
        assert_eq!(layout.runtime_dir, fx.runtime);
        let script = r#"
            echo "cwd: $(pwd)"
            echo "api: $AWS_LAMBDA_RUNTIME_API"
            echo "path: $PATH"
            read -r line; echo "stdin-eof: $?"
            echo "to-stderr" >&2
            port=${AWS_LAMBDA_RUNTIME_API#127.0.0.1:}
            exec 3<>/dev/tcp/127.0.0.1/$port || exit 1
            echo "hello from the process" >&3
            read -r reply <&3
            echo "reply: $reply"
        "#;
        let mut sb = fx.host.spawn(&fx.bash("plain", script)).unwrap();
        let mut out = Output::of(&mut sb);
        let port = sb.runtime_api_listener().local_addr().unwrap().port();
        let line = accept_line(&sb, &mut out, PROBE, "pong\n");
        assert_eq!(line, "hello from the process\n");
        let text = out.read_to_end(PROBE).to_string();
        assert_eq!(
            field(&text, "cwd: "),
            Some(fx.code.to_str().unwrap()),
            "{text}"
        );
        assert_eq!(
            field(&text, "api: "),
            Some(format!("127.0.0.1:{port}").as_str()),
            "{text}"
        );
        assert_eq!(
            field(&text, "path: "),
            Some("/usr/local/bin:/usr/bin:/bin"),
            "{text}"
        );
        assert_eq!(field(&text, "stdin-eof: "), Some("1"), "{text}");
        assert!(text.contains("to-stderr"), "{text}");
        assert_eq!(field(&text, "reply: "), Some("pong"), "{text}");
        assert!(wait_exit(&sb, PROBE));
        assert_eq!(sb.oom_kills(), 0);
    });
}

#[test]
fn kill_ends_the_process_group() {
    within(LIMIT, || {
        let fx = Fixture::new(Isolation::Insecure);
        let script = "sleep 1000 & echo \"child: $!\"; wait";
        let mut sb = fx.host.spawn(&fx.bash("group", script)).unwrap();
        let mut out = Output::of(&mut sb);
        assert!(out.wait_for("child: ", PROBE), "{}", out.text);
        let child: i32 = field(&out.text, "child: ").unwrap().parse().unwrap();
        assert!(std::path::Path::new(&format!("/proc/{child}")).exists());
        sb.kill();
        assert!(
            wait_exit(&sb, Duration::from_secs(5)),
            "leader survived kill"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        // The grandchild is reparented and reaped by init once killed.
        while std::fs::read_to_string(format!("/proc/{child}/stat"))
            .is_ok_and(|s| !s.contains(") Z "))
        {
            assert!(
                Instant::now() < deadline,
                "the group's other process survived kill"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(sb);
    });
}

#[test]
fn memory_peak_comes_from_the_process_and_freeze_stops_it() {
    within(LIMIT, || {
        let fx = Fixture::new(Isolation::Insecure);
        let script = "import time\nb = b'x' * (40 << 20)\nprint('allocated', flush=True)\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.01)";
        let mut sb = fx
            .host
            .spawn(&fx.spec("hwm", &["/usr/bin/python3", "-c", script]))
            .unwrap();
        let mut out = Output::of(&mut sb);
        assert!(out.wait_for("tick", PROBE), "{}", out.text);
        let peak = sb.memory_peak_bytes().expect("VmHWM");
        assert!(peak >= 40 << 20, "peak {peak}");
        sb.freeze().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        out.drain();
        let before = out.text.len();
        std::thread::sleep(Duration::from_millis(200));
        out.drain();
        assert_eq!(out.text.len(), before, "output while stopped");
        sb.thaw().unwrap();
        let ticks = out.text.matches("tick").count();
        let deadline = Instant::now() + PROBE;
        while out.text.matches("tick").count() < ticks + 2 {
            assert!(Instant::now() < deadline, "no output after thaw");
            out.wait_for("never", Duration::from_millis(20));
        }
    });
}

#[test]
fn nonexistent_program_is_a_setup_error_naming_exec() {
    within(LIMIT, || {
        let fx = Fixture::new(Isolation::Insecure);
        let err = fx
            .host
            .spawn(&fx.spec("missing", &["/nonexistent/program"]))
            .unwrap_err();
        assert!(
            matches!(
                err,
                SandboxError::Setup {
                    step: SetupStep::Exec,
                    errno: nix::errno::Errno::ENOENT,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("exec '/nonexistent/program'"),
            "{err}"
        );
    });
}

#[test]
fn allow_network_is_the_hosts_network_in_insecure_mode() {
    let fx = Fixture::new(Isolation::Insecure);
    let mut spec = fx.spec("net", &["/usr/bin/true"]);
    spec.allow_network = true;
    assert!(fx.host.outbound_network().is_ok());
    fx.host
        .spawn(&spec)
        .expect("an unsandboxed process has the host's network");
}
