//! The README's programs build as a user's crate would: a fresh crate whose dependencies are
//! exactly the ones the README lists, each `rust` block with a `main` as one of its binaries,
//! and each other `rust` block as a module of its library.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The code of each fenced block of `markdown` whose info string is exactly `tag`.
fn blocks<'a>(markdown: &'a str, tag: &str) -> Vec<&'a str> {
    let fence = format!("```{tag}\n");
    let mut found = Vec::new();
    let mut rest = markdown;
    while let Some(start) = rest.find(&fence) {
        let body = &rest[start + fence.len()..];
        let end = body.find("\n```").expect("a fenced block is closed");
        found.push(&body[..=end]);
        rest = &body[end..];
    }
    found
}

#[test]
fn the_readmes_programs_build_with_the_dependencies_it_lists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let manifests = blocks(&readme, "toml");
    let listed = manifests
        .iter()
        .find(|b| b.starts_with("[dependencies]\nworkflows"))
        .expect("the README lists a user's dependencies in a ```toml block");
    let programs = blocks(&readme, "rust");
    assert!(!programs.is_empty(), "the README has complete programs");

    let krate = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("readme-crate");
    let _ = std::fs::remove_dir_all(krate.join("src"));
    std::fs::create_dir_all(krate.join("src/bin")).unwrap();
    let dependencies = listed.replace(
        "path = \"workflows\"",
        &format!("path = {:?}", root.join("workflows")),
    );
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"readme-crate\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n[workspace]\n\n{dependencies}"
        ),
    )
    .unwrap();
    // The workspace's versions, so that the build reuses what is resolved already.
    std::fs::copy(root.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    let mut lib = String::from("#![allow(dead_code)]\n");
    for (i, program) in programs.iter().enumerate() {
        if program.contains("fn main(") {
            std::fs::write(krate.join(format!("src/bin/program{i}.rs")), program).unwrap();
        } else {
            std::fs::write(krate.join(format!("src/snippet{i}.rs")), program).unwrap();
            lib.push_str(&format!("mod snippet{i};\n"));
        }
    }
    std::fs::write(krate.join("src/lib.rs"), lib).unwrap();
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--lib", "--bins", "--manifest-path"])
        .arg(krate.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", krate.join("target"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "a README program does not build with the README's dependencies:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
