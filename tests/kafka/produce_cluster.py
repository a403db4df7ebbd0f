"""Creates a Kafka topic and produces records to it with kafka-python (an independent client),
for the replica tests. Arguments: BOOTSTRAP TOPIC PARTITIONS ROUNDS [--no-create]. Each round
sends, to every partition, records through one idempotent producer per codec (none, gzip,
snappy, lz4, zstd): keyed and keyless records, null values, empty values, and headers
(repeated keys, empty and binary values; kafka-python sends no null header value). Prints how many records it sent."""

import sys

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


def records(round_no, partition, codec):
    tag = codec or "none"
    for i in range(7):
        key = None if i % 3 == 0 else f"k{round_no}-{partition}-{i}".encode()
        if i == 1:
            value = None
        elif i == 2:
            value = b""
        else:
            value = (f"{tag} round {round_no} record {i} " * (1 + i)).encode()
        headers = []
        if i % 2 == 0:
            headers = [("h", b"1"), ("h", b""), ("bin", bytes([0, 255, i]))]
        yield key, value, headers


def main():
    bootstrap, topic, partitions, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if "--no-create" not in sys.argv:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic(topic, partitions, 1)])
        admin.close()
    sent = 0
    for round_no in range(rounds):
        for codec in CODECS:
            producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                compression_type=codec,
                enable_idempotence=True,
                acks="all",
                linger_ms=5,
            )
            for partition in range(partitions):
                for key, value, headers in records(round_no, partition, codec):
                    producer.send(topic, key=key, value=value, headers=headers,
                                  partition=partition)
                    sent += 1
            producer.flush()
            producer.close()
    print(sent)


if __name__ == "__main__":
    main()
