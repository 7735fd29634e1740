//! The one way floodgate takes a lock: a panic while a lock was held must
//! not take the service down with it, so a poisoned mutex is recovered (the
//! data it guards is counters and queues that stay consistent per step).

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, recovering the guard if a panicking thread poisoned it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_hands_out_its_data() {
        let mutex = Mutex::new(7);
        let _ = std::panic::catch_unwind(|| {
            let _guard = mutex.lock().unwrap();
            panic!("poison it");
        });
        assert!(mutex.is_poisoned());
        *lock(&mutex) += 1;
        assert_eq!(*lock(&mutex), 8);
    }
}
