mod common;
use common::*;
use crdt::{Limits, RoomDoc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn tmp_fuzz() {
    let mut rng = StdRng::seed_from_u64(42);
    let doc = client(1);
    let mut updates = Vec::new();
    for _ in 0..200 { updates.push(random_edit(&doc, &mut rng)); }
    let mut room = RoomDoc::new(Limits::default());
    for u in &updates[..100] { room.apply_update(u).unwrap(); }
    let base = room.snapshot();
    let mut accepted = 0; let mut refused = 0;
    for i in 0..40000 {
        let mut u = updates[rng.random_range(0..updates.len())].clone();
        match rng.random_range(0..4) {
            0 => { for _ in 0..rng.random_range(1..4) { let b = rng.random_range(0..u.len()*8); u[b/8] ^= 1 << (b%8); } }
            1 => { let at = rng.random_range(0..u.len()); u[at] = rng.random(); }
            2 => { let other = &updates[rng.random_range(0..updates.len())]; let cut = rng.random_range(0..u.len()); u.truncate(cut); u.extend_from_slice(&other[rng.random_range(0..other.len())..]); }
            _ => { let at = rng.random_range(0..=u.len()); u.insert(at, rng.random()); }
        }
        if i % 500 == 0 { room = RoomDoc::from_snapshot(&base, Limits::default()).unwrap(); }
        let before = (room.state_vector(), room.snapshot());
        match room.apply_update(&u) {
            Ok(_) => accepted += 1,
            Err(_) => { refused += 1; assert_eq!((room.state_vector(), room.snapshot()), before, "{u:?}"); }
        }
    }
    eprintln!("accepted {accepted} refused {refused}");
}
