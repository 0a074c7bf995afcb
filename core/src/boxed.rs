//! Errors whose payload is boxed (one pointer through every `?`, which keeps the
//! Worker small) still read as their kind, as when they were not boxed.

/// `Debug` (and, with `display`, `Display`) of `$t`, a newtype over a boxed kind,
/// as the kind's own.
macro_rules! reads_as_its_kind {
    ($t:ty) => {
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
    ($t:ty, display) => {
        $crate::boxed::reads_as_its_kind!($t);
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

pub(crate) use reads_as_its_kind;
