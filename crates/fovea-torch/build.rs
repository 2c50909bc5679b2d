//! Sets an rpath to libtorch's folder so `fovea-torch` runs without LD_LIBRARY_PATH.
//! torch-sys (a direct dependency, `links = "tch"`) reports that folder as
//! `DEP_TCH_LIBTORCH_LIB`.
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
