//! Build script: hands the target triple to the binary, so `--version` says which build it is.

fn main() {
    // TARGET is set by Cargo for every build script; the value only changes with `--target`,
    // which Cargo already treats as a different build, so nothing else can make this rerun.
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=TINYSSE_BUILD_TARGET={target}");
}
