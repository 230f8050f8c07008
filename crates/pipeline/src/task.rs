//! Tasks that cannot leak: aborted when dropped, panics re-raised on join.

use std::future::Future;

use tokio::task::JoinHandle;

use crate::{Error, Result};

/// A spawned task owned by its handle: dropping the handle aborts the task, and
/// [`join`](Self::join) re-raises a panic from inside it.
#[derive(Debug)]
pub(crate) struct SpawnedTask<T> {
    stage: &'static str,
    handle: Option<JoinHandle<T>>,
}

impl<T: Send + 'static> SpawnedTask<T> {
    /// Spawns an async task on the current runtime.
    pub(crate) fn spawn<F>(stage: &'static str, future: F) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        #[expect(clippy::disallowed_methods, reason = "the one sanctioned spawn site")]
        let handle = tokio::spawn(future);
        Self {
            stage,
            handle: Some(handle),
        }
    }

    /// Runs blocking (CPU-bound) work on the blocking pool.
    pub(crate) fn spawn_blocking<F>(stage: &'static str, work: F) -> Self
    where
        F: FnOnce() -> T + Send + 'static,
    {
        #[expect(clippy::disallowed_methods, reason = "the one sanctioned spawn site")]
        let handle = tokio::task::spawn_blocking(work);
        Self {
            stage,
            handle: Some(handle),
        }
    }

    /// Waits for the task. A panic inside it resumes here.
    pub(crate) async fn join(mut self) -> Result<T> {
        let Some(handle) = self.handle.take() else {
            return Err(Error::Stage {
                stage: self.stage,
                message: "was joined twice".into(),
            });
        };
        match handle.await {
            Ok(v) => Ok(v),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(Error::Stage {
                stage: self.stage,
                message: format!("was cancelled: {e}"),
            }),
        }
    }
}

impl<T> Drop for SpawnedTask<T> {
    fn drop(&mut self) {
        if let Some(h) = &self.handle {
            h.abort();
        }
    }
}
