//! A private PostgreSQL server (to be written).
