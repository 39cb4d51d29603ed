//! The SQLite index deleted or corrupted: detected, explained, rebuilt from the step records.
