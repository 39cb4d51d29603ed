//! `assess` node kind (being written).
