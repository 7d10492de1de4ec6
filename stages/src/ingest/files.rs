use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Input files as a pipeline file writes them: one string (a
/// comma-separated list, as the reference's `--input_file`) or a list of
/// such strings.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum InputList {
    One(String),
    Many(Vec<String>),
}

impl InputList {
    pub fn entries(&self) -> &[String] {
        match self {
            InputList::One(s) => std::slice::from_ref(s),
            InputList::Many(v) => v,
        }
    }
}

/// Expands files, directories and globs (each entry may itself be a
/// comma-separated list) into the files to read, in order; relative
/// entries are taken from `base_dir`. Every entry must match at least one
/// file.
pub fn resolve_inputs<S: AsRef<str>>(entries: &[S], base_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let entries = entries
        .iter()
        .flat_map(|e| e.as_ref().split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty());
    for entry in entries {
        let joined = base_dir.join(entry);
        let path = joined.as_path();
        let entry = path.to_string_lossy();
        let entry = entry.as_ref();
        if path.is_dir() {
            let before = files.len();
            walk_dir(path, &mut files)?;
            if files.len() == before {
                return Err(Error::config(format!(
                    "input directory {entry} holds no files"
                )));
            }
        } else if path.exists() {
            files.push(path.to_path_buf());
        } else if entry.contains(['*', '?', '[']) {
            let pattern = glob::glob(entry)
                .map_err(|e| Error::config(format!("input pattern {entry}: {e}")))?;
            let mut matched: Vec<PathBuf> = pattern
                .filter_map(|p| p.ok())
                .filter(|p| p.is_file())
                .collect();
            matched.sort();
            if matched.is_empty() {
                return Err(Error::config(format!(
                    "input pattern {entry} matches no file"
                )));
            }
            files.extend(matched);
        } else {
            return Err(Error::config(format!("input file {entry} does not exist")));
        }
    }
    if files.is_empty() {
        return Err(Error::config("no input files given"));
    }
    Ok(files)
}

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<_>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk_dir(&p, out)?;
        } else if !p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_dirs_and_globs_resolve_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in ["b.txt", "a.txt", "sub/c.txt", "sub/.hidden"] {
            let p = d.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "x\n").unwrap();
        }
        let spec = format!(
            "{}/b.txt, {}/*.txt,{}/sub",
            d.display(),
            d.display(),
            d.display()
        );
        let got = resolve_inputs(&[spec], Path::new("")).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|p| p.strip_prefix(d).unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, vec!["b.txt", "a.txt", "b.txt", "sub/c.txt"]);
    }

    #[test]
    fn missing_inputs_are_named() {
        let err = resolve_inputs(&["/no/such/file.txt"], Path::new(""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/no/such/file.txt"), "{err}");
        let err = resolve_inputs(&["/no/such/*.txt"], Path::new(""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("matches no file"), "{err}");
    }
}
