//! Server-side apply of rendered objects (field manager `kluctl`). So far: resolving field
//! manager conflicts ([`conflicts`]); applying items, hooks and readiness waits follow.

pub mod conflicts;
