//! The gateway decision core (being built).
