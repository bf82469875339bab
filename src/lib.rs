//! tapir: a network traffic analyzer and security monitor for taps, Raspberry Pis and ARM
//! routers. See `DESIGN.md` in the shared folder for the picture; each module is one box of it.

pub mod decode;
pub mod packet;
pub mod wire;
