//! The arrival-disorder stage: each event arrives up to `disorder` after its event time,
//! and events leave in arrival order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::event::Category;

/// An event waiting to be emitted: when it arrives, its place in generation order, and
/// what it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pending {
    /// Arrival time, milliseconds since the epoch; the heap's key.
    pub(crate) arrival: i64,
    /// Generation order, breaking ties between equal arrivals.
    pub(crate) seq: u64,
    /// Event time, milliseconds since the epoch.
    pub(crate) ts: i64,
    pub(crate) resource: u32,
    pub(crate) category: Category,
}

/// A min-heap of events by arrival time.
#[derive(Debug, Default)]
pub(crate) struct Disorder {
    heap: BinaryHeap<Reverse<Pending>>,
}

impl Disorder {
    /// Adds an event.
    pub(crate) fn push(&mut self, event: Pending) {
        self.heap.push(Reverse(event));
    }

    /// The earliest-arriving event, if it may leave: events are generated in event-time
    /// order and arrive no earlier than their event time, so once the next event to be
    /// generated has time `next_ts`, nothing arriving at or before `next_ts` can be
    /// overtaken. `None` means nothing more will be generated.
    pub(crate) fn pop_ready(&mut self, next_ts: Option<i64>) -> Option<Pending> {
        let Reverse(top) = self.heap.peek()?;
        if next_ts.is_some_and(|t| top.arrival > t) {
            return None;
        }
        self.heap.pop().map(|Reverse(p)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(arrival: i64, seq: u64) -> Pending {
        Pending {
            arrival,
            seq,
            ts: arrival,
            resource: 0,
            category: Category::Auth,
        }
    }

    #[test]
    fn leaves_in_arrival_order_once_safe() {
        let mut d = Disorder::default();
        d.push(p(30, 0));
        d.push(p(10, 1));
        d.push(p(10, 2));
        assert_eq!(d.pop_ready(Some(5)), None);
        assert_eq!(d.pop_ready(Some(10)).map(|x| x.seq), Some(1));
        assert_eq!(d.pop_ready(Some(10)).map(|x| x.seq), Some(2));
        assert_eq!(d.pop_ready(Some(29)), None);
        assert_eq!(d.pop_ready(None).map(|x| x.seq), Some(0));
        assert_eq!(d.pop_ready(None), None);
    }
}
