//! `points` node kind (being written).
