//! Routing records to partitions as Kafka producers do.
