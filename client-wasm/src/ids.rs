//! The request and timer ids the machine hands out. A module of its own because the login
//! machine and the revokes beside it draw from one source, and neither should depend on the
//! other for it.

/// Source of request and timer ids, one for both, so that an id names one thing only.
#[derive(Debug)]
pub(crate) struct Ids(u32);

impl Ids {
    /// Starts at 1: 0 is never handed out, so hosts may use it as "none".
    pub(crate) fn new() -> Self {
        Self(1)
    }

    pub(crate) fn next(&mut self) -> u32 {
        let id = self.0;
        // Wrapping after four billion requests is harmless: ids only need to differ from the
        // few outstanding ones. 0 is skipped so hosts may use it as "none".
        self.0 = self.0.checked_add(1).unwrap_or(1);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_count_up_from_one_and_wrap_past_zero() {
        let mut ids = Ids::new();
        assert_eq!([ids.next(), ids.next()], [1, 2]);
        let mut ids = Ids(u32::MAX);
        assert_eq!([ids.next(), ids.next()], [u32::MAX, 1]);
    }
}
