use std::collections::HashMap;
use std::io::Read;
fn main() {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).unwrap();
    let mut m: HashMap<&str, usize> = HashMap::new();
    for w in s.split_whitespace() { *m.entry(w).or_default() += 1; }
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (w, c) in v { println!("{c} {w}"); }
    eprintln!("args: {:?}", std::env::args().skip(1).collect::<Vec<_>>());
}
