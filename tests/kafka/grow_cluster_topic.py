"""Stands in for partitions added to a Kafka topic on the cluster's side, on a test broker
without CreatePartitions: reads partitions 0..OLD of the topic with kafka-python, deletes the
topic, creates it again with NEW partitions, produces the same records (key, value, headers,
CreateTime timestamp) to the same partitions, so every offset is as before, and then EXTRA
records of its own to each added partition (values "native N"). Arguments: BOOTSTRAP TOPIC OLD
NEW EXTRA. Prints the end offsets of partitions 0..NEW as JSON."""

import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic


def read_all(bootstrap, topic, partitions):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=3000)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    ends = consumer.end_offsets(tps)
    consumer.seek_to_beginning(*tps)
    records = {p: [] for p in range(partitions)}
    remaining = {tp for tp in tps if consumer.position(tp) < ends[tp]}
    while remaining:
        batch = consumer.poll(timeout_ms=3000)
        if not batch:
            raise SystemExit(f"records missing: {remaining}")
        for tp, messages in batch.items():
            records[tp.partition].extend(messages)
            if consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
    consumer.close()
    for p in range(partitions):
        assert [m.offset for m in records[p]] == list(range(ends[TopicPartition(topic, p)]))
    return records


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    old, new, extra = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    records = read_all(bootstrap, topic, old)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.delete_topics([topic])
    time.sleep(0.5)
    admin.create_topics([NewTopic(topic, new, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    for p in range(old):
        for m in records[p]:
            producer.send(topic, key=m.key, value=m.value, headers=m.headers or [],
                          partition=p, timestamp_ms=m.timestamp)
        producer.flush()
    for p in range(old, new):
        for i in range(extra):
            producer.send(topic, value=f"native {i}".encode(), partition=p,
                          timestamp_ms=1_600_000_000_000 + i)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    tps = [TopicPartition(topic, p) for p in range(new)]
    ends = consumer.end_offsets(tps)
    consumer.close()
    print(json.dumps({tp.partition: ends[tp] for tp in tps}))


if __name__ == "__main__":
    main()
