//! The README's "Running a real node" recipe, run exactly as written: its
//! shell blocks are extracted from README.md and executed by bash in an
//! empty directory with `betanet` on the PATH. If the README drifts from
//! what the binary does, this fails.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BEGIN: &str = "<!-- recipe: real-node -->";
const END: &str = "<!-- /recipe -->";
/// The recipe waits up to 30 s for the message; a hang must fail.
const DEADLINE: Duration = Duration::from_secs(90);

/// The bash code blocks between the recipe markers, joined.
fn recipe(readme: &str) -> String {
    let start = readme.find(BEGIN).expect("README has the recipe markers");
    let end = readme[start..].find(END).expect("README closes the recipe") + start;
    let mut script = String::new();
    let mut in_block = false;
    for line in readme[start..end].lines() {
        match (in_block, line.trim()) {
            (false, "```bash") => in_block = true,
            (true, "```") => in_block = false,
            (true, _) => {
                script.push_str(line);
                script.push('\n');
            }
            _ => {}
        }
    }
    assert!(!in_block, "an unclosed code block in the recipe");
    script
}

#[test]
fn the_running_a_real_node_recipe_works_as_pasted() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let script = recipe(&readme);
    assert!(script.contains("betanet send"), "{script}");

    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_betanet")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("PATH", path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so nodes left behind by a failure can be
        // stopped all at once.
        .process_group(0)
        .spawn()
        .unwrap();
    let group = child.id();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > DEADLINE {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Whatever happened, nothing of the recipe outlives the test.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .status();
    let _ = child.wait();
    let (mut out, mut err) = (String::new(), String::new());
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    let status = status.unwrap_or_else(|| panic!("the recipe hung\n{out}\n{err}"));
    assert!(
        status.success(),
        "the recipe failed: {status}\n{out}\n{err}"
    );
    assert!(out.contains("hello, mixnet"), "no message:\n{out}\n{err}");
}

/// Every `betanet SUBCOMMAND --flag` in the README's code blocks names a
/// flag that subcommand really has (its `--help` lists it).
#[test]
fn every_flag_the_readme_names_exists() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let mut in_block = false;
    let mut checked = 0;
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        let Some(at) = line.find("betanet ").filter(|_| in_block) else {
            continue;
        };
        let words: Vec<&str> = line[at + "betanet ".len()..]
            .split_whitespace()
            .take_while(|w| !w.starts_with('#') && *w != "&" && *w != "|")
            .collect();
        let Some(&sub) = words
            .first()
            .filter(|w| w.chars().all(|c| c.is_ascii_lowercase()))
        else {
            continue;
        };
        let mut command = vec![sub];
        if let Some(&second) = words
            .get(1)
            .filter(|_| matches!(sub, "topology" | "config" | "authority"))
        {
            command.push(second);
        }
        let flags: Vec<&str> = words
            .iter()
            .filter(|w| w.starts_with("--"))
            .map(|w| w.split('=').next().unwrap_or(w))
            .collect();
        if flags.is_empty() {
            continue;
        }
        let help = Command::new(env!("CARGO_BIN_EXE_betanet"))
            .args(&command)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in flags {
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "README line `{line}`: `betanet {}` has no {flag}",
                command.join(" ")
            );
            checked += 1;
        }
    }
    assert!(
        checked > 10,
        "only {checked} flags found: is the parser broken?"
    );
}
