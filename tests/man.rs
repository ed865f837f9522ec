//! The man pages in man/ are generated from the CLI definitions; this test
//! fails when a committed page is stale. `make man` (OPS_UPDATE_MAN=1)
//! regenerates them.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};

fn pages() -> Vec<(String, Vec<u8>)> {
    let mut pages = Vec::new();
    for command in [
        ops_backup::command(),
        ops_verify::command(),
        ops_restore::command(),
        ops_prune::command(),
        ops_compact::command(),
        ops_health::command(),
        ops_snapshot::command(),
    ] {
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

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../man")
}

#[test]
fn committed_man_pages_match_the_cli() {
    let update = std::env::var_os("OPS_UPDATE_MAN").is_some();
    let mut stale = Vec::new();
    for (file, page) in pages() {
        let path = man_dir().join(&file);
        if update {
            fs::write(&path, &page).unwrap();
        } else if fs::read(&path).ok().as_ref() != Some(&page) {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "stale man pages {stale:?}: run `make man` and commit man/"
    );
}

#[test]
fn the_record_protocol_has_its_page() {
    let page = fs::read_to_string(man_dir().join("ops.7")).unwrap();
    for word in ["backup", "verify", "manifest", "sha256", "NUL"] {
        assert!(page.contains(word), "ops.7 does not mention {word}");
    }
}
