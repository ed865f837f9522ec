//! The man pages in man/ and the shell completions in completions/ are
//! generated from the CLI definitions; these tests fail when a committed
//! file is stale. `make man` (OPS_UPDATE_MAN=1) regenerates them.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

fn commands() -> [clap::Command; 7] {
    [
        ops_backup::command(),
        ops_verify::command(),
        ops_restore::command(),
        ops_prune::command(),
        ops_compact::command(),
        ops_health::command(),
        ops_snapshot::command(),
    ]
}

fn pages() -> Vec<(String, Vec<u8>)> {
    let mut pages = Vec::new();
    for command in commands() {
        let name = command.get_name().to_owned();
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            let sub_name = format!("{name}-{}", sub.get_name());
            let sub = sub
                .clone()
                .name(sub_name.clone())
                .version(command.get_version().unwrap_or_default().to_owned());
            pages.push((format!("{sub_name}.1"), render(sub)));
        }
        pages.push((format!("{name}.1"), render(command)));
    }
    pages
}

fn render(command: clap::Command) -> Vec<u8> {
    let mut out = Vec::new();
    clap_mangen::Man::new(command)
        .date("2026-11-21")
        .render(&mut out)
        .unwrap();
    out
}

/// `completions/bash/ops-backup`, `completions/zsh/_ops-backup`,
/// `completions/fish/ops-backup.fish`, as each shell looks for them.
fn completions() -> Vec<(String, Vec<u8>)> {
    use clap_complete::Shell;
    let mut files = Vec::new();
    for mut command in commands() {
        let name = command.get_name().to_owned();
        for (shell, file) in [
            (Shell::Bash, format!("bash/{name}")),
            (Shell::Zsh, format!("zsh/_{name}")),
            (Shell::Fish, format!("fish/{name}.fish")),
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command, &name, &mut out);
            files.push((file, out));
        }
    }
    files
}

fn repo_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

fn man_dir() -> PathBuf {
    repo_dir("man")
}

/// Compares (or with OPS_UPDATE_MAN, writes) generated files under `dir`;
/// returns the stale ones.
fn stale(dir: &Path, files: Vec<(String, Vec<u8>)>) -> Vec<String> {
    let update = std::env::var_os("OPS_UPDATE_MAN").is_some();
    let mut stale = Vec::new();
    for (file, content) in files {
        let path = dir.join(&file);
        if update {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &content).unwrap();
        } else if fs::read(&path).ok().as_ref() != Some(&content) {
            stale.push(file);
        }
    }
    stale
}

#[test]
fn committed_man_pages_match_the_cli() {
    let stale = stale(&man_dir(), pages());
    assert!(
        stale.is_empty(),
        "stale man pages {stale:?}: run `make man` and commit man/"
    );
}

#[test]
fn committed_shell_completions_match_the_cli() {
    let stale = stale(&repo_dir("completions"), completions());
    assert!(
        stale.is_empty(),
        "stale completions {stale:?}: run `make man` and commit completions/"
    );
}

#[test]
fn bash_completes_options_and_subcommands() {
    let dir = repo_dir("completions/bash");
    let complete = |tool: &str, words: &str| -> String {
        let script = format!(
            "source {}/{tool}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _{} {tool} \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            dir.display(),
            tool.replace('-', "__")
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let options = complete("ops-prune", "ops-prune --keep-l");
    assert!(options.lines().any(|l| l == "--keep-last"), "{options}");
    let commands = complete("ops-snapshot", "ops-snapshot re");
    assert!(commands.lines().any(|l| l == "restore"), "{commands}");
}

#[test]
fn the_record_protocol_has_its_page() {
    let page = fs::read_to_string(man_dir().join("ops.7")).unwrap();
    for word in ["backup", "verify", "manifest", "sha256", "NUL"] {
        assert!(page.contains(word), "ops.7 does not mention {word}");
    }
}
