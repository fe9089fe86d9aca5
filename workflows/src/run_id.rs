//! Run ids: 128 random-looking bits as 32 hex digits, without a system call per run.
//!
//! A per-process key comes from the operating system's randomness once; each id is then a
//! keyed hash of a per-process counter. Ids are unique within a process (the counter) and
//! across processes with overwhelming probability (the key), and not guessable from
//! one another.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

static KEYS: LazyLock<(RandomState, RandomState, u64)> = LazyLock::new(|| {
    let salt = uuid::Uuid::new_v4().as_u64_pair().0;
    (RandomState::new(), RandomState::new(), salt)
});
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new run id.
pub(crate) fn new_run_id() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let (a, b, salt) = &*KEYS;
    let half = |state: &RandomState| {
        let mut hasher = state.build_hasher();
        hasher.write_u64(*salt);
        hasher.write_u64(n);
        hasher.finish()
    };
    format!("{:016x}{:016x}", half(a), half(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_32_digit_hex() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_run_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()))
        );
    }
}
