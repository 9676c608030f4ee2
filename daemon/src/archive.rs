//! Tar archives as hoist writes them: every entry with one fixed time and owner, so
//! the same files always give the same bytes, and Docker's build cache and the
//! registry see an unchanged layer as unchanged.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// 1980-01-01T00:00:00Z: the fixed mtime of every entry (as reproducible-build tools use;
/// some tools refuse times before 1980).
pub const FIXED_MTIME: u64 = 315_532_800;

/// The uid and gid files get in images: the `hoist` user of the stacks.
pub const APP_UID: u64 = 1001;

/// Appends a tar builder's entries with fixed metadata, into memory or a file: big
/// archives (a pushed commit, a build's outputs) go to files and are streamed from them,
/// so memory does not grow with the app.
pub struct Writer<W: Write = Vec<u8>> {
    inner: tar::Builder<W>,
    uid: u64,
    mtime: u64,
}

impl Writer<Vec<u8>> {
    /// A new in-memory archive whose entries are owned by `uid` (and gid `uid`).
    pub fn new(uid: u64) -> Writer {
        Writer::wrap(Vec::new(), uid)
    }
}

impl Writer<BufWriter<File>> {
    /// A new archive written to the file `path` (created or truncated).
    pub fn create(path: &Path, uid: u64) -> std::io::Result<Writer<BufWriter<File>>> {
        Ok(Writer::wrap(BufWriter::new(File::create(path)?), uid))
    }
}

impl<W: Write> Writer<W> {
    /// An archive written to `sink`, entries owned by `uid`.
    pub fn wrap(sink: W, uid: u64) -> Writer<W> {
        let mut inner = tar::Builder::new(sink);
        inner.mode(tar::HeaderMode::Deterministic);
        Writer { inner, uid, mtime: FIXED_MTIME }
    }

    /// The owner of the entries appended from now on.
    pub fn set_uid(&mut self, uid: u64) {
        self.uid = uid;
    }

    /// The mtime of the entries appended from now on, instead of [`FIXED_MTIME`]: files
    /// copied into a running process (`hoist dev`'s sync) must look newer than what it
    /// cached of them (Python's `.pyc` files are checked by source mtime and size).
    pub fn set_mtime(&mut self, mtime: u64) {
        self.mtime = mtime;
    }

    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(self.mtime);
        header.set_uid(self.uid);
        header.set_gid(self.uid);
        header
    }

    pub fn dir(&mut self, path: &str) -> std::io::Result<()> {
        let mut header = self.header(tar::EntryType::Directory, 0o755, 0);
        self.inner.append_data(&mut header, path, std::io::empty())
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> std::io::Result<()> {
        self.file_from(path, mode, data.len() as u64, data)
    }

    /// A file of `size` bytes read from `data`, without holding it in memory.
    pub fn file_from(&mut self, path: &str, mode: u32, size: u64, data: impl Read) -> std::io::Result<()> {
        let mut header = self.header(tar::EntryType::Regular, mode, size);
        self.inner.append_data(&mut header, path, data.take(size))
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> std::io::Result<()> {
        let mut header = self.header(tar::EntryType::Symlink, 0o777, 0);
        self.inner.append_link(&mut header, path, target)
    }

    /// Copies every entry of the archive file `archive` under `prefix` (which ends in `/`
    /// or is empty), dropping `strip` leading path components first, sorted by path.
    /// File contents are streamed from the archive (read once for an index of entries,
    /// then each entry's data by its offset), never held in memory.
    pub fn append_rebased(&mut self, archive: &Path, strip: usize, prefix: &str) -> std::io::Result<usize> {
        self.append_rebased_except(archive, strip, prefix, &[], &[])
    }

    /// [`Writer::append_rebased`], leaving out every entry whose first component (after
    /// `strip`) is one of `exclude`, and what lies under it, and adding the symbolic
    /// links `links` (name under `prefix`, target) in their sorted places.
    pub fn append_rebased_except(
        &mut self,
        archive: &Path,
        strip: usize,
        prefix: &str,
        exclude: &[String],
        links: &[(String, String)],
    ) -> std::io::Result<usize> {
        struct Indexed {
            path: String,
            kind: tar::EntryType,
            mode: u32,
            link: Option<String>,
            offset: u64,
            size: u64,
        }
        let mut index = Vec::new();
        let mut reader = tar::Archive::new(BufReader::new(File::open(archive)?));
        for entry in reader.entries()? {
            let entry = entry?;
            let path = entry.path()?.to_string_lossy().into_owned();
            let rest: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").skip(strip).collect();
            if rest.is_empty() || exclude.iter().any(|name| name == rest[0]) {
                continue;
            }
            index.push(Indexed {
                path: format!("{prefix}{}", rest.join("/")),
                kind: entry.header().entry_type(),
                mode: entry.header().mode()?,
                link: entry.link_name()?.map(|l| l.to_string_lossy().into_owned()),
                offset: entry.raw_file_position(),
                size: entry.size(),
            });
        }
        for (name, target) in links {
            let path = format!("{prefix}{name}");
            index.retain(|entry| entry.path != path);
            index.push(Indexed {
                path,
                kind: tar::EntryType::Symlink,
                mode: 0o777,
                link: Some(target.clone()),
                offset: 0,
                size: 0,
            });
        }
        index.sort_by(|a, b| a.path.cmp(&b.path));
        let mut data = File::open(archive)?;
        for entry in &index {
            match entry.kind {
                // As `append_tree` writes folders, so the same tree gives the same bytes.
                tar::EntryType::Directory => self.dir(&format!("{}/", entry.path))?,
                tar::EntryType::Symlink => self.symlink(&entry.path, entry.link.as_deref().unwrap_or(""))?,
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mode = if entry.mode & 0o111 != 0 { 0o755 } else { 0o644 };
                    data.seek(SeekFrom::Start(entry.offset))?;
                    self.file_from(&entry.path, mode, entry.size, &mut data)?
                }
                // Hard links, devices and fifos have no place in an app image.
                _ => {}
            }
        }
        Ok(index.len())
    }

    /// Appends the folder `root` of this machine under `prefix` (which ends in `/`),
    /// entries sorted by path, with the fixed time, owner and modes (folders and
    /// executables 0755, other files 0644); symbolic links are kept as links; hard links
    /// become files, devices and fifos are left out. The tree is walked with a stack of
    /// its own. Returns how many entries were appended.
    pub fn append_tree(&mut self, root: &Path, prefix: &str) -> std::io::Result<usize> {
        let mut entries = Vec::new();
        let mut folders = vec![std::path::PathBuf::new()];
        while let Some(relative) = folders.pop() {
            for entry in std::fs::read_dir(root.join(&relative))? {
                let entry = entry?;
                let path = relative.join(entry.file_name());
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    folders.push(path.clone());
                }
                entries.push((path.to_string_lossy().into_owned(), kind));
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, kind) in &entries {
            let full = root.join(path);
            let name = format!("{prefix}{path}");
            if kind.is_dir() {
                self.dir(&format!("{name}/"))?;
            } else if kind.is_symlink() {
                self.symlink(&name, &std::fs::read_link(&full)?.to_string_lossy())?;
            } else if kind.is_file() {
                use std::os::unix::fs::PermissionsExt;
                let file = File::open(&full)?;
                let metadata = file.metadata()?;
                let mode = if metadata.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
                self.file_from(&name, mode, metadata.len(), BufReader::new(file))?;
            }
        }
        Ok(entries.len())
    }

    pub fn finish(self) -> std::io::Result<W> {
        self.inner.into_inner()
    }
}

/// The most hoist reads of a file it reads whole (a Procfile, `.s2i/environment`,
/// `.s2i/bin/run`, a runtime version file): such files are small by nature.
pub const SMALL_FILE_MAX: u64 = 1024 * 1024;

/// Reads one file out of an archive, refusing one bigger than `max` bytes (from its
/// header, before reading it) with an error that names it.
pub fn read_file(archive: &Path, wanted: &str, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    Ok(read_files(archive, &[(wanted, max)])?.pop().flatten())
}

/// Reads the files `wanted` (each with the most bytes it may have) out of an archive in
/// one pass, refusing one bigger than its most as `read_file` does. Files the archive
/// lacks are `None`, in the order asked.
pub fn read_files(archive: &Path, wanted: &[(&str, u64)]) -> std::io::Result<Vec<Option<Vec<u8>>>> {
    let mut found: Vec<Option<Vec<u8>>> = vec![None; wanted.len()];
    let mut reader = tar::Archive::new(BufReader::new(File::open(archive)?));
    for entry in reader.entries()? {
        let entry = entry?;
        let path = entry.path()?.to_string_lossy().trim_start_matches("./").to_string();
        let Some(at) = wanted.iter().position(|(w, _)| *w == path) else { continue };
        if found[at].is_some() {
            continue;
        }
        let max = wanted[at].1;
        let size = entry.header().size()?;
        if size > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{path} is {size} bytes; hoist reads at most {max} bytes of it, so it is refused; make it smaller"
                ),
            ));
        }
        let mut data = Vec::with_capacity(size as usize);
        entry.take(max).read_to_end(&mut data)?;
        found[at] = Some(data);
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    Ok(found)
}

/// Writes the regular files under `folder/` in `archive` into `dest` (created), paths
/// relative to `folder`; anything that is not a plain relative path is skipped. Returns how
/// many files were written.
pub fn unpack_folder(archive: &Path, folder: &str, dest: &Path) -> std::io::Result<usize> {
    let mut reader = tar::Archive::new(BufReader::new(File::open(archive)?));
    let mut written = 0;
    for entry in reader.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path()?.into_owned();
        let Ok(relative) = path.strip_prefix(folder) else { continue };
        if relative.as_os_str().is_empty()
            || !relative.components().all(|c| matches!(c, std::path::Component::Normal(_)))
        {
            continue;
        }
        let target = dest.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::io::copy(&mut entry, &mut File::create(&target)?)?;
        written += 1;
    }
    Ok(written)
}

/// Replaces `dir` with the contents of the tar `archive`: unpacked next to it first, then
/// renamed into place, so a crash never leaves a half-unpacked `dir`.
pub fn replace_dir_with_tar(archive: &[u8], dir: &std::path::Path) -> std::io::Result<()> {
    let fresh = dir.with_extension("unpacking");
    let _ = std::fs::remove_dir_all(&fresh);
    std::fs::create_dir_all(&fresh)?;
    tar::Archive::new(archive).unpack(&fresh)?;
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::rename(&fresh, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebasing_is_deterministic_and_sorted() {
        let dir = std::env::temp_dir().join(format!("hoist-archive-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let source = dir.join("source.tar");
        let mut writer = Writer::create(&source, 0).unwrap();
        writer.dir("app/").unwrap();
        writer.file("app/z.txt", 0o600, b"z").unwrap();
        writer.file("app/a.sh", 0o700, b"#!/bin/sh").unwrap();
        writer.finish().unwrap().flush().unwrap();
        let build = || {
            let mut w = Writer::new(APP_UID);
            assert_eq!(w.append_rebased(&source, 1, "ctx/app/").unwrap(), 2);
            w.finish().unwrap()
        };
        let (first, second) = (build(), build());
        assert_eq!(first, second);
        let mut archive = tar::Archive::new(&first[..]);
        let names: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().mode().unwrap(),
                    e.header().uid().unwrap(),
                )
            })
            .collect();
        assert_eq!(names, [("ctx/app/a.sh".into(), 0o755, APP_UID), ("ctx/app/z.txt".into(), 0o644, APP_UID)]);
        assert_eq!(read_file(&source, "app/z.txt", SMALL_FILE_MAX).unwrap().unwrap(), b"z");
        let refused = read_file(&source, "app/a.sh", 3).unwrap_err().to_string();
        assert!(refused.contains("app/a.sh is 9 bytes; hoist reads at most 3 bytes"), "{refused}");
        let both = read_files(&source, &[("app/z.txt", 1), ("missing", 1), ("app/a.sh", 9)]).unwrap();
        assert_eq!(both, [Some(b"z".to_vec()), None, Some(b"#!/bin/sh".to_vec())], "one pass, in the order asked");
        let mut content = String::new();
        tar::Archive::new(&first[..]).entries().unwrap().next().unwrap().unwrap().read_to_string(&mut content).unwrap();
        assert_eq!(content, "#!/bin/sh", "contents are copied by their offsets");
        let unpacked = dir.join("unpacked");
        assert_eq!(unpack_folder(&source, "app", &unpacked).unwrap(), 2);
        assert_eq!(std::fs::read_to_string(unpacked.join("z.txt")).unwrap(), "z");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
