//! [`Handle`]: an open node.

use tokio::sync::{mpsc, oneshot};

use super::driver::Command;
use super::{Error, call};
use crate::proto::{ContentGeneration, HandleId, LockMode, NodeMeta, Reply, Request, Sequencer};

/// A node's contents and metadata, as read together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contents {
    /// Metadata at the time of the read.
    pub meta: NodeMeta,
    /// The whole contents.
    pub data: Vec<u8>,
}

/// An open node in a session.
pub struct Handle {
    id: HandleId,
    path: String,
    meta: NodeMeta,
    commands: mpsc::Sender<Command>,
}

impl Handle {
    pub(crate) fn new(
        id: HandleId,
        path: String,
        meta: NodeMeta,
        commands: mpsc::Sender<Command>,
    ) -> Self {
        Handle {
            id,
            path,
            meta,
            commands,
        }
    }

    /// The handle id.
    pub fn id(&self) -> HandleId {
        self.id
    }

    /// The path it was opened with.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The node's metadata when it was opened.
    pub fn meta_at_open(&self) -> &NodeMeta {
        &self.meta
    }

    /// Reads the whole contents and metadata (needs `READ`); checks the checksum.
    pub async fn get(&self) -> Result<Contents, Error> {
        match call(
            &self.commands,
            Request::GetContentsAndStat { handle: self.id },
        )
        .await?
        {
            Reply::Contents { meta, data } => {
                if NodeMeta::checksum_of(&data) != meta.checksum {
                    return Err(Error::ChecksumMismatch);
                }
                Ok(Contents { meta, data })
            }
            _ => Err(Error::UnexpectedReply),
        }
    }

    /// Replaces the contents (needs `WRITE`); returns the metadata after the write.
    pub async fn put(&self, data: &[u8]) -> Result<NodeMeta, Error> {
        self.write(None, data).await
    }

    /// Replaces the contents only if their generation is still `generation`
    /// (fails with [`Error::StaleCas`] otherwise).
    pub async fn put_if(
        &self,
        generation: ContentGeneration,
        data: &[u8],
    ) -> Result<NodeMeta, Error> {
        self.write(Some(generation), data).await
    }

    async fn write(&self, cas: Option<ContentGeneration>, data: &[u8]) -> Result<NodeMeta, Error> {
        if data.len() > crate::proto::MAX_FILE_LIMIT {
            return Err(Error::TooLarge);
        }
        let req = Request::Put {
            handle: self.id,
            cas,
            data: data.to_vec(),
        };
        match call(&self.commands, req).await? {
            Reply::Written { meta } => Ok(meta),
            _ => Err(Error::UnexpectedReply),
        }
    }

    /// Takes the lock, waiting in the node's queue as long as it takes (needs `LOCK`).
    ///
    /// Dropping the returned future before it completes gives the lock up: a grant that
    /// arrives later is released at once (counted in [`super::Stats::abandoned_grants`]).
    pub async fn lock(&self, mode: LockMode) -> Result<Sequencer, Error> {
        self.lock_request(mode, true).await
    }

    /// Takes the lock if nobody holds a conflicting one ([`Error::LockConflict`] otherwise).
    pub async fn try_lock(&self, mode: LockMode) -> Result<Sequencer, Error> {
        self.lock_request(mode, false).await
    }

    async fn lock_request(&self, mode: LockMode, wait: bool) -> Result<Sequencer, Error> {
        let (tx, rx) = oneshot::channel();
        let req = Request::Lock {
            handle: self.id,
            mode,
            wait,
        };
        self.commands
            .send(Command::Lock(req, self.id, tx))
            .await
            .map_err(|_| Error::TaskStopped)?;
        match rx.await.map_err(|_| Error::TaskStopped)?? {
            Reply::Locked { sequencer } => Ok(sequencer),
            _ => Err(Error::UnexpectedReply),
        }
    }

    /// Releases the lock (or cancels a queued request).
    pub async fn unlock(&self) -> Result<(), Error> {
        match call(&self.commands, Request::Unlock { handle: self.id }).await? {
            Reply::Unlocked => Ok(()),
            _ => Err(Error::UnexpectedReply),
        }
    }

    /// The sequencer of the lock this handle holds.
    pub async fn sequencer(&self) -> Result<Sequencer, Error> {
        match call(&self.commands, Request::GetSequencer { handle: self.id }).await? {
            Reply::Sequencer { sequencer } => Ok(sequencer),
            _ => Err(Error::UnexpectedReply),
        }
    }

    /// Closes the handle, releasing its lock.
    pub async fn close(self) -> Result<(), Error> {
        match call(&self.commands, Request::Close { handle: self.id }).await? {
            Reply::Closed => Ok(()),
            _ => Err(Error::UnexpectedReply),
        }
    }
}
