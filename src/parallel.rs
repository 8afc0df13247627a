//! One small work-sharing loop: a function over a slice on a few scoped threads, results in
//! the slice's order. Used where the work is many small independent pieces: scanning files
//! (CPU, one worker per core) and flushing files to disk (waiting on the disk, more workers
//! than cores so the device sees many requests at once).

use std::sync::atomic::{AtomicUsize, Ordering};

/// `f` over `items` on up to `workers` threads (1 runs inline), results in `items` order.
/// Workers take the next item as they finish one, so uneven items balance out.
pub(crate) fn map_in_order<T, R, F>(items: &[T], workers: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let workers = workers.min(items.len()).max(1);
    if workers == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let parts: Vec<Vec<(usize, R)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker thread panicked"))
            .collect()
    });
    let mut all: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    for (i, r) in parts.into_iter().flatten() {
        all[i] = Some(r);
    }
    all.into_iter()
        .map(|r| r.expect("every item taken once"))
        .collect()
}

/// One worker per core.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_input_order_whatever_the_workers() {
        let items: Vec<u64> = (0..1000).collect();
        for workers in [0, 1, 2, 7, 2000] {
            let out = map_in_order(&items, workers, |n| n * n);
            assert_eq!(out, items.iter().map(|n| n * n).collect::<Vec<_>>());
        }
        assert!(map_in_order(&[] as &[u8], 4, |b| *b).is_empty());
    }
}
