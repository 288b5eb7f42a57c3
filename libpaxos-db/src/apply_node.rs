//! Open, close, put and delete.

use core::time::Duration;

use crate::apply_lock::{promote, release};
use crate::command::{CmdError, EventKind, MAX_LOCK_DELAY, ModeRule, Permission, Reply, Response};
use crate::lock::LockState;
use crate::mode::{EventMask, OpenMode};
use crate::node::{Handle, HandleRef, Node, NodeKind};
use crate::path;
use crate::state::Tx;
use crate::types::{
    Checksum, ContentGeneration, HandleId, Instance, LockGeneration, SessionId, WallTime,
};

fn check_mode(mode: OpenMode) -> Result<(), CmdError> {
    let create = mode.contains(OpenMode::CREATE);
    let rule = if mode.contains(OpenMode::EXCLUSIVE) && !create {
        ModeRule::ExclusiveWithoutCreate
    } else if mode.contains(OpenMode::EPHEMERAL) && !create {
        ModeRule::EphemeralWithoutCreate
    } else if mode.contains(OpenMode::EPHEMERAL) && mode.contains(OpenMode::DIRECTORY) {
        ModeRule::EphemeralDirectory
    } else if mode.contains(OpenMode::WRITE) && mode.contains(OpenMode::DIRECTORY) {
        ModeRule::WriteDirectory
    } else {
        return Ok(());
    };
    Err(CmdError::BadMode(rule))
}

/// Looks up an open handle of `session`.
pub(crate) fn handle_of(
    tx: &Tx<'_>,
    session: SessionId,
    handle: HandleId,
) -> Result<(HandleRef, Handle), CmdError> {
    let who = HandleRef { session, handle };
    let found = tx
        .st
        .handles
        .get(&who)
        .ok_or(CmdError::UnknownHandle(handle))?;
    // Deleting a node closes its handles, so a handle always names a live incarnation; check
    // anyway rather than act on the wrong node.
    match tx.st.nodes.get(&found.path) {
        Some(node) if node.instance == found.instance => Ok((who, found.clone())),
        _ => Err(CmdError::NoSuchNode),
    }
}

/// Opens `path` (creating it if `mode` says so). A node this open creates carries
/// `lock_delay` (refused above [`MAX_LOCK_DELAY`] before anything changes).
pub(crate) fn open(
    tx: &mut Tx<'_>,
    session: SessionId,
    time: WallTime,
    path: String,
    mode: OpenMode,
    events: EventMask,
    lock_delay: Duration,
) -> Reply {
    path::validate(&path).map_err(CmdError::BadPath)?;
    check_mode(mode)?;
    if lock_delay > MAX_LOCK_DELAY {
        return Err(CmdError::LockDelayTooLong {
            max_ms: MAX_LOCK_DELAY.as_millis() as u64,
            got_ms: u64::try_from(lock_delay.as_millis()).unwrap_or(u64::MAX),
        });
    }
    let open_handles = tx.st.session_handles(session).len() as u64;
    if open_handles >= tx.limits.max_handles_per_session {
        return Err(CmdError::TooManyHandles(tx.limits.max_handles_per_session));
    }
    let want_dir = mode.contains(OpenMode::DIRECTORY);
    let (node, created) = match tx.st.nodes.get(&path) {
        Some(node) => {
            if mode.contains(OpenMode::CREATE | OpenMode::EXCLUSIVE) {
                return Err(CmdError::Exists);
            }
            match (want_dir, node.kind) {
                (true, NodeKind::File) => return Err(CmdError::NotADirectory),
                (false, NodeKind::Directory) => return Err(CmdError::IsADirectory),
                _ => (node.clone(), false),
            }
        }
        None => {
            if !mode.contains(OpenMode::CREATE) {
                return Err(CmdError::NoSuchNode);
            }
            // The root always exists, so a missing path has a parent.
            let parent = path::parent(&path).ok_or(CmdError::Exists)?;
            match tx.st.nodes.get(parent).map(|p| p.kind) {
                None => return Err(CmdError::ParentMissing),
                Some(NodeKind::File) => return Err(CmdError::ParentNotDirectory),
                Some(NodeKind::Directory) => {}
            }
            let instance = Instance(tx.st.meta.next_instance);
            tx.st.meta.next_instance = tx.st.meta.next_instance.saturating_add(1);
            let node = Node {
                kind: if want_dir {
                    NodeKind::Directory
                } else {
                    NodeKind::File
                },
                instance,
                content_generation: ContentGeneration(0),
                lock_generation: LockGeneration(0),
                created: time,
                modified: time,
                size: 0,
                checksum: Checksum::of(&[]),
                ephemeral_owner: mode.contains(OpenMode::EPHEMERAL).then_some(session),
            };
            tx.set_node(&path, node.clone());
            if !lock_delay.is_zero() {
                tx.set_lock(
                    &path,
                    LockState {
                        delay: lock_delay,
                        ..LockState::default()
                    },
                );
            }
            let name = path::name(&path).to_string();
            let parent = parent.to_string();
            tx.notify_watchers(
                &parent,
                EventMask::CHILDREN,
                &EventKind::ChildAdded { name },
                None,
            );
            (node, true)
        }
    };
    let Some(mut record) = tx.st.sessions.get(&session).cloned() else {
        return Err(CmdError::UnknownSession(session));
    };
    let handle = record.next_handle;
    record.next_handle = HandleId(handle.0.saturating_add(1));
    tx.set_session(session, record);
    let who = HandleRef { session, handle };
    tx.add_handle(
        who,
        Handle {
            path,
            instance: node.instance,
            mode,
            events,
        },
    );
    Ok(Response::Opened {
        handle,
        created,
        node,
    })
}

pub(crate) fn close(
    tx: &mut Tx<'_>,
    session: SessionId,
    time: WallTime,
    handle: HandleId,
) -> Reply {
    let who = HandleRef { session, handle };
    let found = tx
        .remove_handle(who)
        .ok_or(CmdError::UnknownHandle(handle))?;
    if release(tx, &found.path, who) {
        promote(tx, &found.path, time);
    }
    Ok(Response::Closed)
}

pub(crate) fn put(
    tx: &mut Tx<'_>,
    session: SessionId,
    time: WallTime,
    handle: HandleId,
    data: Vec<u8>,
    cas: Option<ContentGeneration>,
) -> Reply {
    let (_, found) = handle_of(tx, session, handle)?;
    if !found.mode.contains(OpenMode::WRITE) {
        return Err(CmdError::ModeForbids(Permission::Write));
    }
    let Some(mut node) = tx.st.nodes.get(&found.path).cloned() else {
        return Err(CmdError::NoSuchNode);
    };
    if node.kind == NodeKind::Directory {
        return Err(CmdError::IsADirectory);
    }
    let size = data.len() as u64;
    if size > tx.limits.max_file_size {
        return Err(CmdError::FileTooLarge {
            size,
            limit: tx.limits.max_file_size,
        });
    }
    if let Some(expected) = cas
        && expected != node.content_generation
    {
        return Err(CmdError::CasConflict {
            expected,
            actual: node.content_generation,
        });
    }
    node.content_generation = ContentGeneration(node.content_generation.0.saturating_add(1));
    node.modified = time;
    // Fits: the limit is at most 256 KiB.
    node.size = size as u32;
    node.checksum = Checksum::of(&data);
    tx.set_node(&found.path, node.clone());
    tx.set_data(&found.path, data);
    tx.notify_watchers(
        &found.path,
        EventMask::MODIFIED,
        &EventKind::ContentModified,
        None,
    );
    Ok(Response::Written { node })
}

pub(crate) fn delete(tx: &mut Tx<'_>, path: String) -> Reply {
    path::validate(&path).map_err(CmdError::BadPath)?;
    if path == "/" {
        return Err(CmdError::RootImmutable);
    }
    if !tx.st.nodes.contains_key(&path) {
        return Err(CmdError::NoSuchNode);
    }
    if tx.st.has_children(&path) {
        return Err(CmdError::DirectoryNotEmpty);
    }
    remove_node(tx, &path, None);
    Ok(Response::Deleted)
}

/// Deletes a node with its contents, its lock (holders and waiters) and every handle on it,
/// telling each handle's session (but `skip`) and the parent's watchers.
pub(crate) fn remove_node(tx: &mut Tx<'_>, path: &str, skip: Option<crate::types::SessionId>) {
    let refs: Vec<HandleRef> = tx
        .st
        .on_path
        .get(path)
        .map(|set| set.iter().copied().collect())
        .unwrap_or_default();
    for who in refs {
        tx.remove_handle(who);
        if Some(who.session) != skip {
            tx.notify(who, EventKind::NodeDeleted);
        }
    }
    if tx.st.locks.contains_key(path) {
        tx.set_lock(path, Default::default());
    }
    tx.remove_node(path);
    if let Some(parent) = path::parent(path) {
        let name = path::name(path).to_string();
        tx.notify_watchers(
            parent,
            EventMask::CHILDREN,
            &EventKind::ChildRemoved { name },
            skip,
        );
    }
}
