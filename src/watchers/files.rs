//! Watching files by their parent directory: file dependencies and the data file.

use super::*;

/// Watches files by their parent directory (so files replaced by rename, truncated, or created
/// later are seen), reads them once they settle, and sends their new contents.
pub(super) struct FileWatch {
    watcher: Option<notify::RecommendedWatcher>,
    inner: Arc<Mutex<FileState>>,
}

#[derive(Default)]
pub(super) struct FileState {
    /// Absolute path → the dependencies reading it.
    files: HashMap<PathBuf, Vec<Dependency>>,
    /// The `-data` file, absolute.
    data_file: Option<PathBuf>,
    /// Directories watched, with how many files in them are wanted.
    dirs: HashMap<PathBuf, usize>,
}

pub(super) fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    }
}

/// Reads each changed file once it has been quiet for `FILE_SETTLE` (the data file: reloads it).
pub(super) async fn settle(
    mut raw: mpsc::UnboundedReceiver<PathBuf>,
    state: Arc<Mutex<FileState>>,
    tx: mpsc::UnboundedSender<Event>,
    sources: Arc<Sources>,
) {
    let mut due: HashMap<PathBuf, Instant> = HashMap::new();
    loop {
        let next = due.values().min().copied();
        tokio::select! {
            p = raw.recv() => match p {
                Some(p) => { due.insert(p, Instant::now() + FILE_SETTLE); }
                None => return,
            },
            () = async { tokio::time::sleep_until(next.unwrap_or_else(Instant::now)).await }, if next.is_some() => {
                let now = Instant::now();
                let ready: Vec<PathBuf> = due.iter().filter(|(_, t)| **t <= now).map(|(p, _)| p.clone()).collect();
                for p in ready {
                    due.remove(&p);
                    let (deps, is_data) = {
                        let st = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        (st.files.get(&p).cloned().unwrap_or_default(), st.data_file.as_ref() == Some(&p))
                    };
                    if is_data {
                        sources.reload_data();
                    }
                    for dep in deps {
                        let value = local::read_dependency(&dep);
                        if tx.send(Event::Value(dep, value)).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }
}

impl FileWatch {
    pub(super) fn new(tx: mpsc::UnboundedSender<Event>, sources: Arc<Sources>) -> FileWatch {
        let data_file = sources.data_file().map(absolute);
        let inner = Arc::new(Mutex::new(FileState {
            data_file: data_file.clone(),
            ..FileState::default()
        }));
        let (raw_tx, raw_rx) = mpsc::unbounded_channel::<PathBuf>();
        let watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                Ok(ev) if !matches!(ev.kind, notify::EventKind::Access(_)) => {
                    for p in ev.paths {
                        let _ = raw_tx.send(p);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("file watch: {e}"),
            });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!("cannot watch files ({e}): changes to files will not be seen");
                None
            }
        };
        tokio::spawn(settle(raw_rx, inner.clone(), tx, sources));
        let mut fw = FileWatch { watcher, inner };
        if let Some(p) = data_file {
            fw.watch_dir(&p);
        }
        fw
    }

    fn watch_dir(&mut self, file: &Path) {
        let Some(dir) = file.parent().map(Path::to_path_buf) else {
            return;
        };
        let mut st = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = st.dirs.entry(dir.clone()).or_insert(0);
        *count += 1;
        if *count == 1 {
            if let Some(w) = &mut self.watcher {
                if let Err(e) = w.watch(&dir, RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %dir.display(), "cannot watch directory: {e}; changes to files in it will not be seen");
                }
            }
        }
    }

    pub(super) fn watch(&mut self, dep: Dependency, path: &Path) {
        let abs = absolute(path);
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .files
            .entry(abs.clone())
            .or_default()
            .push(dep);
        self.watch_dir(&abs);
    }

    pub(super) fn forget(&mut self, path: &Path) {
        let abs = absolute(path);
        let mut st = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.files.remove(&abs);
        let Some(dir) = abs.parent().map(Path::to_path_buf) else {
            return;
        };
        if let Some(count) = st.dirs.get_mut(&dir) {
            *count -= 1;
            if *count == 0 {
                st.dirs.remove(&dir);
                if let Some(w) = &mut self.watcher {
                    let _ = w.unwatch(&dir);
                }
            }
        }
    }
}
