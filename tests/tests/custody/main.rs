//! Key custody, end to end with real OpenBao on the simulated cluster: the init answer is
//! saved before anything else and never lost to a timeout, a shutdown or a lost Lease; a
//! copy of the keys is escrowed off-cluster, encrypted to the owners' age recipients;
//! rekeys give new shares that unseal every pod while the old ones stop working; and two
//! operators with a faulty Lease never run disruptive actions at the same time.
//!
//! Slots 185–199 of the simulated cluster's port range belong to this suite: 185–187 save
//! first (and 198, 199), 188–190 escrow (190: approval), 191–194 fencing, 195–197 rotation.

mod escrow;
mod fencing;
mod rotation;
mod save_first;
