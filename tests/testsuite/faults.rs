//! Disk full while writing, and four concurrent runs of different specs sharing steps.
