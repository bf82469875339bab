//! The values components hand to each other: flow records, findings, alerts, devices and
//! minutes of traffic, with the queries that select them. A leaf below every component: it
//! imports only `packet`, so that `messages` and every actor can name these types without
//! naming each other. Each component re-exports the values it produces.

pub mod alert;
pub mod device;
pub mod finding;
pub mod flow;
pub mod traffic;
