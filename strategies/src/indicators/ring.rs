//! Fixed-capacity double-ended ring buffer backing the windowed indicators.

/// A double-ended ring buffer whose storage is allocated exactly once, in
/// [`Ring::with_capacity`]. No operation ever grows or reallocates it, which
/// is what lets the indicators promise allocation-free `update`s.
#[derive(Debug, Clone)]
pub(crate) struct Ring<T> {
    buf: Box<[T]>,
    head: usize,
    len: usize,
}

impl<T: Copy + Default> Ring<T> {
    /// Allocate a ring holding at most `cap` elements.
    pub(crate) fn with_capacity(cap: usize) -> Self {
        Self { buf: vec![T::default(); cap].into_boxed_slice(), head: 0, len: 0 }
    }

    /// Maximum number of elements.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Current number of elements.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// `true` when the ring holds no element.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `true` when the ring holds `capacity()` elements.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.len == self.buf.len()
    }

    /// Forget all elements (storage is kept).
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }

    /// Physical slot of logical position `i` (`i < capacity()`).
    #[inline]
    fn slot(&self, i: usize) -> usize {
        // head < cap and i < cap, so j < 2 * cap: one conditional subtract
        // wraps it (cheaper than `%` on the hot path).
        let j = self.head + i;
        if j >= self.buf.len() { j - self.buf.len() } else { j }
    }

    /// Append at the back. When the ring is full the front element is
    /// evicted and returned (FIFO window semantics). With zero capacity the
    /// pushed value itself is returned.
    #[inline]
    pub(crate) fn push_back(&mut self, v: T) -> Option<T> {
        if self.buf.is_empty() {
            return Some(v);
        }
        if self.is_full() {
            let old = std::mem::replace(&mut self.buf[self.head], v);
            self.head = self.slot(1);
            Some(old)
        } else {
            let s = self.slot(self.len);
            self.buf[s] = v;
            self.len += 1;
            None
        }
    }

    /// Remove and return the front (oldest) element.
    #[inline]
    pub(crate) fn pop_front(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let v = self.buf[self.head];
        self.head = self.slot(1);
        self.len -= 1;
        Some(v)
    }

    /// Remove and return the back (newest) element.
    #[inline]
    pub(crate) fn pop_back(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        Some(self.buf[self.slot(self.len)])
    }

    /// The front (oldest) element.
    #[inline]
    pub(crate) fn front(&self) -> Option<T> {
        (self.len > 0).then(|| self.buf[self.head])
    }

    /// The back (newest) element.
    #[inline]
    pub(crate) fn back(&self) -> Option<T> {
        (self.len > 0).then(|| self.buf[self.slot(self.len - 1)])
    }

    /// Iterate front to back (test helper).
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = T> + '_ {
        (0..self.len).map(move |i| self.buf[self.slot(i)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Debug, Clone)]
    enum Op {
        Push(i64),
        PopFront,
        PopBack,
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => any::<i64>().prop_map(Op::Push),
            2 => Just(Op::PopFront),
            2 => Just(Op::PopBack),
            1 => Just(Op::Clear),
        ]
    }

    #[test]
    fn fifo_example() {
        // cap 2: push 1, 2 -> [1,2]; push 3 evicts 1 -> [2,3].
        let mut r = Ring::<i64>::with_capacity(2);
        assert_eq!(r.push_back(1), None);
        assert_eq!(r.push_back(2), None);
        assert!(r.is_full());
        assert_eq!(r.push_back(3), Some(1));
        assert_eq!(r.front(), Some(2));
        assert_eq!(r.back(), Some(3));
        assert_eq!(r.pop_back(), Some(3));
        assert_eq!(r.pop_front(), Some(2));
        assert_eq!(r.pop_front(), None);
        assert!(r.is_empty());
        // Zero capacity: everything bounces straight back.
        let mut z = Ring::<i64>::with_capacity(0);
        assert_eq!(z.push_back(7), Some(7));
        assert_eq!(z.len(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The ring behaves exactly like a `VecDeque` bounded at `cap`
        /// (push on a full ring evicts the front), and never grows.
        #[test]
        fn matches_vecdeque_model(cap in 0usize..8, ops in prop::collection::vec(op(), 0..200)) {
            let mut ring = Ring::<i64>::with_capacity(cap);
            let mut model: VecDeque<i64> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(v) => {
                        let expect = if cap == 0 {
                            Some(v)
                        } else if model.len() == cap {
                            model.push_back(v);
                            model.pop_front()
                        } else {
                            model.push_back(v);
                            None
                        };
                        prop_assert_eq!(ring.push_back(v), expect);
                    }
                    Op::PopFront => prop_assert_eq!(ring.pop_front(), model.pop_front()),
                    Op::PopBack => prop_assert_eq!(ring.pop_back(), model.pop_back()),
                    Op::Clear => { ring.clear(); model.clear(); }
                }
                prop_assert_eq!(ring.len(), model.len());
                prop_assert_eq!(ring.capacity(), cap);
                prop_assert_eq!(ring.front(), model.front().copied());
                prop_assert_eq!(ring.back(), model.back().copied());
                prop_assert!(ring.iter().eq(model.iter().copied()));
            }
        }
    }
}
