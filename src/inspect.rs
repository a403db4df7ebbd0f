//! Read-only inspection of partition files: batch headers, index entries, CRC results.
