//! The `/notify` flow: the wire format and its validation ([`payload`]), accepting a
//! deployment ([`accept`]), the notification rows ([`store`]) and the `JOBS`
//! consumer that sends them to Telegram ([`deliver`]).

pub mod accept;
pub mod burst;
pub mod deliver;
pub mod payload;
pub mod rollback;
pub mod sends;
pub mod store;

pub use accept::*;
pub use payload::*;
