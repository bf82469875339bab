//! tapir: a network traffic analyzer and security monitor for taps, Raspberry Pis and ARM
//! routers. Each module is one box of the design: capture → decode → flows / metrics /
//! detectors → alerts → store.

pub mod alert;
pub mod analyze;
pub mod auth;
pub mod capture;
pub mod config;
pub mod credit;
pub mod decode;
pub mod detect;
pub mod devices;
pub mod engine;
pub mod export;
pub mod flow;
pub mod geo;
pub mod hash;
pub mod healthcheck;
pub mod http;
pub mod intel;
pub mod messages;
pub mod metrics;
pub mod model;
pub mod names;
pub mod notify;
pub mod output;
pub mod packet;
pub mod pipeline;
pub mod privacy;
pub mod process;
pub mod serve;
pub mod store;
pub mod synth;
pub mod wire;
