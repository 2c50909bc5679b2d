//! The glue `fovea` shares with `fovea-torch` (crate `fovea-cli-common`), as a user sees
//! it: a failure is one `error: ...` line and exit code 1; Ctrl-C stops a command cleanly
//! with exit code 130. (That `-v` reaches `fovea-torch` is `fovea_cli_common`'s
//! `flags_are_forwarded_as_given`: a stand-in script cannot pass the libtorch check, which
//! traces the script's interpreter.) Also: every shipped shell script parses.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn fovea() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fovea"));
    c.env("NO_COLOR", "1").env_remove("RUST_LOG");
    c
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_failure_is_one_error_line_and_exit_code_1() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere");
    let out = fovea().args(["stats", p(&missing)]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("nowhere"),
        "{err}"
    );
}

#[test]
fn ctrl_c_stops_extract_with_exit_code_130() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, store) = (tmp.path().join("data"), tmp.path().join("store"));
    let synth = fovea()
        .args(["synth", "--out", p(&data), "--images", "40", "--seed", "1"])
        .args(["--size", "1024x768"])
        .output()
        .unwrap();
    assert!(synth.status.success(), "{synth:?}");
    let mut child = fovea()
        .args(["extract", "--dataset", p(&data), "--out", p(&store)])
        .args(["--patch-size", "32", "--stride", "16"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first line (the dataset's size) is printed once the handler is about to be set
    // and extraction starts; give it a moment to begin.
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("40 photographs"), "{first}");
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) with a pid of our own child and a valid signal number.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(60), "did not stop");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "stderr: {err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("error: ") && last.ends_with("interrupted"),
        "{err}"
    );
    assert!(!store.exists(), "an interrupted extraction leaves no store");
}

/// Every shell script shipped (bench/, scripts/, .ci/) parses (`bash -n`): a quoting slip
/// in a benchmark's summary line once made `bench/extract.sh` stop after all its runs.
#[test]
fn shipped_shell_scripts_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut scripts = Vec::new();
    for dir in ["bench", "scripts", ".ci"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            let p = e.path();
            let is_sh = p.extension().is_some_and(|x| x == "sh") || p.ends_with(".ci/run");
            if is_sh {
                scripts.push(p);
            }
        }
    }
    assert!(scripts.len() >= 5, "{scripts:?}");
    for s in scripts {
        let o = std::process::Command::new("bash")
            .arg("-n")
            .arg(&s)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{}: {}",
            s.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
