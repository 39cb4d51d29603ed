//! `train` node kind (being written).
