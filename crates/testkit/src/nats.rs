//! A private NATS server with JetStream (to be written).
