//! `fovea-torch` shares `fovea`'s glue (crate `fovea-cli-common`): a failure is one
//! `error: ...` line with exit code 1, and `-v` installs a debug-level log subscriber (so
//! the libraries' warnings and debug lines reach the terminal).

use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fovea-torch"));
    c.env_remove("RUST_LOG");
    c
}

#[test]
fn a_failure_is_one_error_line_and_exit_code_1() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("no-run");
    // The output lies outside every input, so the one error is the missing run.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["eval", "--run"])
        .arg(&run)
        .arg("--store")
        .arg(tmp.path())
        .arg("--out")
        .arg(elsewhere.path().join("eval"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("no-run"),
        "{err}"
    );
}

#[test]
fn verbose_installs_a_debug_subscriber() {
    let tmp = tempfile::tempdir().unwrap();
    let stderr = |verbose: bool| {
        let mut c = bin();
        if verbose {
            c.arg("-v");
        }
        let out = c
            .args(["eval", "--run"])
            .arg(tmp.path().join("no-run"))
            .arg("--store")
            .arg(tmp.path())
            .arg("--out")
            .arg(tmp.path().join("eval"))
            .output()
            .unwrap();
        String::from_utf8(out.stderr).unwrap()
    };
    let quiet = stderr(false);
    assert!(!quiet.contains("log level"), "{quiet}");
    let loud = stderr(true);
    assert!(
        loud.contains("fovea-torch") && loud.contains("log level debug"),
        "{loud}"
    );
    // The error is still the last line, in the same form.
    assert!(
        loud.lines().last().unwrap().starts_with("error: "),
        "{loud}"
    );
}
