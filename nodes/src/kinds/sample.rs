//! `sample` node kind (being written).
