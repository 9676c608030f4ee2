//! Embeds `../buildpacks` (buildpacks and stacks) and `../deploy/chart` (the chart of the
//! kubernetes target) into hoistd as tars, so a hoistd binary copied or installed anywhere
//! still has them; hoistd unpacks them into its data dir at start unless its config names
//! folders of its own.

use std::path::Path;

fn main() {
    embed("../buildpacks", "buildpacks.tar");
    embed("../deploy/chart", "chart.tar");
}

fn embed(folder: &str, tar_name: &str) {
    // Read when the script runs, not baked in when it is compiled: a target dir shared by
    // clones at other paths reuses this script's binary, and must read this clone's files.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join(folder);
    // Cargo rescans a folder named here for changed files.
    println!("cargo:rerun-if-changed={}", root.display());
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join(tar_name);
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut tar = tar::Builder::new(std::fs::File::create(&out).expect("OUT_DIR is writable"));
    for relative in files {
        let path = root.join(&relative);
        let data = std::fs::read(&path).expect("embedded files are readable");
        let executable = std::os::unix::fs::PermissionsExt::mode(&path.metadata().unwrap().permissions()) & 0o111 != 0;
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(if executable { 0o755 } else { 0o644 });
        header.set_mtime(315_532_800);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, &relative, &data[..]).expect("tar writes");
    }
    tar.finish().expect("tar finishes");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("embedded folders are readable") {
        let path = entry.expect("entries are readable").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            files.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
        }
    }
}
