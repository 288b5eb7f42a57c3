//! Prints a fresh user secret: 43 characters (256 random bits, URL-safe base64).
//!
//! `cargo run -p cldc --example gen-secret`
//!
//! Put it in the cell's users file and in the user's secret file (mode 0600).

use cldc::keyfile::secret_text;

fn main() {
    println!("{}", secret_text(&rand::random::<[u8; 32]>()).as_str());
}
