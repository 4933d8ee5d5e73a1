//! A queue from a Zenoh callback to the one task that consumes it, taken in
//! batches: the callback pushes under a short lock, and the consumer swaps
//! the whole queue out at once, so a busy stream costs one lock per batch
//! on the consumer's side, not one synchronisation per message.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Makes a queue: the sending half goes to the callback.
pub(crate) fn queue<T>() -> (QueueTx<T>, QueueRx<T>) {
    let shared = Arc::new(Shared {
        items: Mutex::new(VecDeque::new()),
        notify: Notify::new(),
        closed: AtomicBool::new(false),
    });
    (
        QueueTx {
            shared: shared.clone(),
        },
        QueueRx {
            shared,
            local: VecDeque::new(),
        },
    )
}

#[derive(Debug)]
struct Shared<T> {
    items: Mutex<VecDeque<T>>,
    notify: Notify,
    /// The sending half was dropped.
    closed: AtomicBool,
}

/// The sending half; dropping it closes the queue (after what it holds).
#[derive(Debug)]
pub(crate) struct QueueTx<T> {
    shared: Arc<Shared<T>>,
}

impl<T> QueueTx<T> {
    /// Queues `item` and wakes the consumer if it waits.
    pub fn push(&self, item: T) {
        self.shared
            .items
            .lock()
            .expect("queue lock")
            .push_back(item);
        self.shared.notify.notify_one();
    }

    /// Queues `items` in order under one lock, and wakes the consumer if it
    /// waits (nothing for none).
    pub fn push_all(&self, items: Vec<T>) {
        if items.is_empty() {
            return;
        }
        self.shared.items.lock().expect("queue lock").extend(items);
        self.shared.notify.notify_one();
    }
}

impl<T> Drop for QueueTx<T> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.notify.notify_one();
    }
}

/// Why [`QueueRx::try_pop`] gave nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Empty {
    /// Nothing now.
    Now,
    /// Nothing, and nothing more will come.
    Closed,
}

/// The consuming half.
#[derive(Debug)]
pub(crate) struct QueueRx<T> {
    shared: Arc<Shared<T>>,
    /// The batch being consumed.
    local: VecDeque<T>,
}

impl<T> QueueRx<T> {
    /// The next item, without waiting.
    pub fn try_pop(&mut self) -> Result<T, Empty> {
        if let Some(item) = self.local.pop_front() {
            return Ok(item);
        }
        // Read "closed" first: what was pushed before closing is then seen.
        let closed = self.shared.closed.load(Ordering::Acquire);
        std::mem::swap(
            &mut self.local,
            &mut *self.shared.items.lock().expect("queue lock"),
        );
        match self.local.pop_front() {
            Some(item) => Ok(item),
            None if closed => Err(Empty::Closed),
            None => Err(Empty::Now),
        }
    }

    /// The next item, if there is one now, without taking it.
    pub fn peek(&mut self) -> Option<&T> {
        if self.local.is_empty() {
            std::mem::swap(
                &mut self.local,
                &mut *self.shared.items.lock().expect("queue lock"),
            );
        }
        self.local.front()
    }

    /// Waits until an item is there (`true`), or the queue is closed and
    /// empty (`false`). Takes nothing: cancel-safe.
    pub async fn ready(&mut self) -> bool {
        loop {
            let closed = self.shared.closed.load(Ordering::Acquire);
            if self.peek().is_some() {
                return true;
            }
            if closed {
                return false;
            }
            self.shared.notify.notified().await;
        }
    }

    /// The next item, waiting for one; `None` once the queue is closed and
    /// empty. Cancel-safe: an item is taken only when this returns it.
    pub async fn pop(&mut self) -> Option<T> {
        loop {
            match self.try_pop() {
                Ok(item) => return Some(item),
                Err(Empty::Closed) => return None,
                // A push after the check leaves a permit: no wake-up is lost.
                Err(Empty::Now) => self.shared.notify.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn items_come_in_order_and_the_end_after_them() {
        let (tx, mut rx) = queue();
        assert_eq!(rx.try_pop(), Err(Empty::Now));
        let producer = std::thread::spawn(move || {
            for i in 0..10_000u32 {
                tx.push(i);
            }
        });
        let mut got = Vec::new();
        while let Some(i) = tokio::time::timeout(Duration::from_secs(10), rx.pop())
            .await
            .expect("no hang")
        {
            got.push(i);
        }
        producer.join().unwrap();
        assert_eq!(got, (0..10_000).collect::<Vec<_>>());
        assert_eq!(rx.try_pop(), Err(Empty::Closed));
    }

    #[tokio::test]
    async fn peek_shows_what_pop_takes() {
        let (tx, mut rx) = queue();
        assert!(rx.peek().is_none());
        tx.push(1u8);
        tx.push(2);
        assert!(tokio::time::timeout(Duration::from_secs(5), rx.ready())
            .await
            .expect("ready"));
        assert_eq!(rx.peek(), Some(&1));
        assert_eq!(rx.try_pop(), Ok(1));
        assert_eq!(rx.peek(), Some(&2));
        assert_eq!(rx.try_pop(), Ok(2));
        drop(tx);
        assert!(!rx.ready().await);
    }

    #[tokio::test]
    async fn a_waiting_consumer_is_woken() {
        let (tx, mut rx) = queue();
        let waiter = tokio::spawn(async move { rx.pop().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.push(7u8);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(got, Some(7));
    }
}
