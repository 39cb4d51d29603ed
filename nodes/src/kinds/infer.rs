//! `infer` node kind (being written).
