//! The one build script of the crates that link libtorch (`fovea-nn`, `fovea-torch`; each
//! names this file as `build` in its Cargo.toml): sets an rpath to libtorch's folder so
//! their binaries and test executables run without LD_LIBRARY_PATH, and records that folder
//! as `FOVEA_LIBTORCH_LIB` for messages. torch-sys (a direct dependency of both,
//! `links = "tch"`) reports the folder as `DEP_TCH_LIBTORCH_LIB`.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        let dir = std::fs::canonicalize(&dir)
            .map(|p| p.display().to_string())
            .unwrap_or(dir);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-env=FOVEA_LIBTORCH_LIB={dir}");
    }
}
