//! Between the wire types (`cldc::proto`) and the replicated state's (`libpaxos_db`).

use std::time::Duration;

use cldc::proto as wire;
use libpaxos_db as db;

/// A node's metadata as the wire carries it.
pub fn meta(node: &db::Node) -> wire::NodeMeta {
    let mut flags = wire::NodeFlags::NONE;
    if node.kind == db::NodeKind::Directory {
        flags = flags | wire::NodeFlags::DIRECTORY;
    }
    if node.ephemeral_owner.is_some() {
        flags = flags | wire::NodeFlags::EPHEMERAL;
    }
    wire::NodeMeta {
        instance: wire::InstanceNumber(node.instance.0),
        content_generation: wire::ContentGeneration(node.content_generation.0),
        lock_generation: wire::LockGeneration(node.lock_generation.0),
        created: Duration::from_millis(node.created.0),
        modified: Duration::from_millis(node.modified.0),
        size: node.size,
        // The database keeps the first 8 bytes of SHA-256 read big-endian; the wire reads
        // the same bytes little-endian (docs/protocol.md §5.6).
        checksum: u64::from_le_bytes(node.checksum.0.to_be_bytes()),
        flags,
    }
}

/// Lock modes.
pub fn lock_mode_in(mode: wire::LockMode) -> db::LockMode {
    match mode {
        wire::LockMode::Shared => db::LockMode::Shared,
        wire::LockMode::Exclusive => db::LockMode::Exclusive,
    }
}

/// Lock modes.
pub fn lock_mode_out(mode: db::LockMode) -> wire::LockMode {
    match mode {
        db::LockMode::Shared => wire::LockMode::Shared,
        db::LockMode::Exclusive => wire::LockMode::Exclusive,
    }
}

/// A sequencer as the wire carries it.
pub fn sequencer_out(s: &db::Sequencer) -> wire::Sequencer {
    wire::Sequencer {
        path: s.path.clone(),
        mode: lock_mode_out(s.mode),
        lock_generation: wire::LockGeneration(s.generation.0),
        instance: wire::InstanceNumber(s.instance.0),
    }
}

/// A sequencer from the wire.
pub fn sequencer_in(s: &wire::Sequencer) -> db::Sequencer {
    db::Sequencer {
        path: s.path.clone(),
        instance: db::Instance(s.instance.0),
        mode: lock_mode_in(s.mode),
        generation: db::LockGeneration(s.lock_generation.0),
    }
}

/// An open mode from the wire; `None` for bits the protocol does not define.
pub fn open_mode(mode: wire::OpenMode) -> Option<db::OpenMode> {
    if mode.has_unknown_bits() {
        return None;
    }
    u8::try_from(mode.0).ok().and_then(db::OpenMode::from_bits)
}

/// An event mask from the wire; `None` for bits the protocol does not define. The database
/// has one `CHILDREN` bit for both child events.
pub fn event_mask(mask: wire::EventMask) -> Option<db::EventMask> {
    if mask.has_unknown_bits() {
        return None;
    }
    let mut out = db::EventMask::NONE;
    if mask.contains(wire::EventMask::CONTENTS_MODIFIED) {
        out = out | db::EventMask::MODIFIED;
    }
    if mask.contains(wire::EventMask::CHILD_ADDED) || mask.contains(wire::EventMask::CHILD_REMOVED)
    {
        out = out | db::EventMask::CHILDREN;
    }
    if mask.contains(wire::EventMask::LOCK_CONFLICT) {
        out = out | db::EventMask::LOCK_CONFLICT;
    }
    Some(out)
}

/// The wire's code for a command error.
pub fn error_code(err: &db::CmdError) -> wire::ErrorCode {
    use db::CmdError as E;
    use wire::ErrorCode as C;
    match err {
        E::BadPath(_) | E::RootImmutable => C::BadPath,
        E::MalformedCommand => C::Internal,
        E::StaleEpoch { .. } => C::StaleEpoch,
        E::UnknownSession(_) => C::UnknownSession,
        E::SessionExists(_) => C::SessionExists,
        E::BadUserName | E::BadMode(_) | E::RequestTooOld { .. } | E::LockDelayTooLong { .. } => {
            C::BadPacket
        }
        E::TooManySessions(_) => C::TooManySessions,
        E::TooManyHandles(_) | E::TooManyWaiters(_) | E::TooManyHolders(_) => C::Busy,
        E::UnknownHandle(_) => C::BadHandle,
        E::ModeForbids(_) => C::ModeForbids,
        E::NoSuchNode => C::NoSuchNode,
        E::Exists => C::Exists,
        E::ParentMissing => C::NoParent,
        E::ParentNotDirectory | E::NotADirectory => C::NotADirectory,
        E::IsADirectory => C::IsADirectory,
        E::DirectoryNotEmpty => C::DirectoryNotEmpty,
        E::FileTooLarge { .. } => C::TooLarge,
        E::CasConflict { .. } => C::StaleCas,
        E::LockConflict | E::AlreadyHeld => C::LockConflict,
        E::AlreadyWaiting => C::LockPending,
        E::NotLocked => C::NotLocked,
        E::StaleSequencer => C::StaleSequencer,
        #[allow(unreachable_patterns)]
        _ => C::Internal,
    }
}

/// The wire's answer for a command's reply; `None` for replies no client asked for (a
/// barrier's or a no-op's).
pub fn response(reply: &db::Reply, lease: Duration) -> Option<wire::Response> {
    use db::Response as R;
    use wire::Reply as W;
    let ok = match reply {
        // A barred seq's copy is dropped, never answered (docs/protocol.md 9.2).
        Err(db::CmdError::Barred) => return None,
        Err(err) => return Some(wire::Response::Err(error_code(err))),
        Ok(r) => r,
    };
    let w = match ok {
        R::SessionCreated => W::SessionCreated { lease },
        R::SessionEnded => W::SessionEnded,
        R::Opened { handle, node, .. } => W::Opened {
            handle: wire::HandleId(handle.0),
            meta: meta(node),
        },
        R::Closed => W::Closed,
        R::Written { node } => W::Written { meta: meta(node) },
        R::Deleted => W::Deleted,
        R::Locked { sequencer } => W::Locked {
            sequencer: sequencer_out(sequencer),
        },
        R::LockQueued => W::LockQueued,
        R::Unlocked => W::Unlocked,
        R::SequencerValid => W::SequencerValid,
        R::Noop => return None,
    };
    Some(wire::Response::Ok(w))
}

/// The wire event for a notice. `generation` is the content generation after the write
/// that caused it (the database's notice does not carry it).
pub fn event(notice: &db::Notice, generation: wire::ContentGeneration) -> wire::Event {
    let handle = wire::HandleId(notice.to.handle.0);
    match &notice.event {
        db::EventKind::ContentModified => wire::Event::ContentsModified { handle, generation },
        db::EventKind::ChildAdded { name } => wire::Event::ChildAdded {
            handle,
            name: name.clone(),
        },
        db::EventKind::ChildRemoved { name } => wire::Event::ChildRemoved {
            handle,
            name: name.clone(),
        },
        db::EventKind::NodeDeleted => wire::Event::NodeDeleted { handle },
        db::EventKind::LockAcquired { sequencer } => wire::Event::LockAcquired {
            handle,
            sequencer: sequencer_out(sequencer),
        },
        db::EventKind::LockConflict => wire::Event::LockConflict { handle },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_cross_from_big_to_little_endian_reading_of_the_same_bytes() {
        let data = b"hello";
        let node = db::Node {
            kind: db::NodeKind::File,
            instance: db::Instance(3),
            content_generation: db::ContentGeneration(2),
            lock_generation: db::LockGeneration(1),
            created: db::WallTime(1500),
            modified: db::WallTime(2500),
            size: 5,
            checksum: db::Checksum::of(data),
            ephemeral_owner: Some(db::SessionId(9)),
        };
        let m = meta(&node);
        assert_eq!(m.checksum, wire::NodeMeta::checksum_of(data));
        assert_eq!(m.created, Duration::from_millis(1500));
        assert_eq!(m.flags, wire::NodeFlags::EPHEMERAL);
    }

    #[test]
    fn unknown_mode_and_mask_bits_are_refused() {
        assert!(open_mode(wire::OpenMode(0x08)).is_none());
        assert!(open_mode(wire::OpenMode(0x100)).is_none());
        assert!(event_mask(wire::EventMask(0x10)).is_none());
        assert_eq!(
            event_mask(wire::EventMask::CHILD_REMOVED),
            Some(db::EventMask::CHILDREN)
        );
    }
}
