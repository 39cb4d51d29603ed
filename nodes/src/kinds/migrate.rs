//! `migrate` node kind (being written).
