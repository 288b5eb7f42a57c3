//! Writes a new cell private key file and prints the public key as one line of base64.
//!
//! `cargo run -p cldc --example keygen -- --out FILE`
//!
//! The file is created with mode 0600 and never over an existing file; its format is one
//! line, `cld-cell-key-v1 <base64>` (docs/protocol.md §12.1). Give the printed public key to
//! clients (`SessionOptions::cell_key`, `cldcli --cell-key`).

use std::path::PathBuf;
use std::process::ExitCode;

use cldc::keyfile::write_private_key;
use cldc::proto::CellPrivateKey;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.as_slice() {
        [flag, path] if flag == "--out" => PathBuf::from(path),
        _ => {
            eprintln!("usage: keygen --out FILE");
            return ExitCode::from(2);
        }
    };
    let key = CellPrivateKey::from_bytes(rand::random::<[u8; 32]>());
    if let Err(e) = write_private_key(&out, &key) {
        eprintln!("keygen: {e}");
        return ExitCode::FAILURE;
    }
    println!("{}", key.public().to_base64());
    ExitCode::SUCCESS
}
