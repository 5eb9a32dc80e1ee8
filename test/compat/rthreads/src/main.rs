// A Rust program for the compatibility suite: std::thread (spawn, join, scoped threads),
// mpsc channels, Arc<Mutex>, a Condvar and a Barrier, with output that does not depend on
// scheduling.
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{mpsc, Arc, Barrier, Condvar, Mutex};
use std::thread;

fn main() {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).unwrap();
    let lines: Vec<String> = text.lines().map(|l| l.to_lowercase()).collect();

    // One thread per chunk of lines, results over a channel.
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::new();
    for (i, chunk) in lines.chunks(4).enumerate() {
        let tx = tx.clone();
        let chunk: Vec<String> = chunk.to_vec();
        handles.push(thread::spawn(move || {
            let mut m = BTreeMap::new();
            for w in chunk.iter().flat_map(|l| l.split_whitespace()) {
                *m.entry(w.to_string()).or_insert(0u32) += 1;
            }
            tx.send((i, m)).unwrap();
            i * 10
        }));
    }
    drop(tx);
    let mut total: BTreeMap<String, u32> = BTreeMap::new();
    let mut parts = 0;
    for (_, m) in rx {
        parts += 1;
        for (w, n) in m {
            *total.entry(w).or_insert(0) += n;
        }
    }
    let ids: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let mut top: Vec<(&String, &u32)> = total.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    println!("parts {} ids {}", parts, ids);
    for (w, n) in top.iter().take(5) {
        println!("{:>4} {}", n, w);
    }

    // A shared counter, a barrier and a condition variable handshake.
    let counter = Arc::new(Mutex::new(0u64));
    let barrier = Arc::new(Barrier::new(4));
    let ready = Arc::new((Mutex::new(0), Condvar::new()));
    let ts: Vec<_> = (0..4)
        .map(|k| {
            let (c, b, r) = (counter.clone(), barrier.clone(), ready.clone());
            thread::spawn(move || {
                for _ in 0..1000 {
                    *c.lock().unwrap() += k + 1;
                }
                let leader = b.wait().is_leader();
                let (m, cv) = &*r;
                *m.lock().unwrap() += 1;
                cv.notify_all();
                leader
            })
        })
        .collect();
    {
        let (m, cv) = &*ready;
        let mut g = m.lock().unwrap();
        while *g < 4 {
            g = cv.wait(g).unwrap();
        }
    }
    let leaders = ts.into_iter().filter(|_| true).map(|t| t.join().unwrap() as u32).sum::<u32>();
    println!("counter {} leaders {}", *counter.lock().unwrap(), leaders);

    // Scoped threads borrowing the input.
    let lens: Vec<usize> = thread::scope(|s| {
        let hs: Vec<_> = lines.iter().take(3).map(|l| s.spawn(move || l.len())).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    println!("lengths {:?}", lens);
    eprintln!("threads done");
}
