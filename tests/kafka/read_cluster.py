"""Reads partitions of a Kafka topic from the beginning with kafka-python (an independent
client) and prints one JSON object per record: partition, offset, timestamp, timestamp type,
key, value and headers (bytes as base64, null as null). Arguments: BOOTSTRAP TOPIC
PARTITIONS [GROUP]. With GROUP, reads each partition from the group's committed offset instead
and prints the committed offsets first, as {"committed": {partition: offset}}."""

import base64
import json
import sys

from kafka import KafkaConsumer, TopicPartition


def b64(data):
    return None if data is None else base64.b64encode(data).decode()


def main():
    bootstrap, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
    group = sys.argv[4] if len(sys.argv) > 4 else None
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        isolation_level="read_committed",
        consumer_timeout_ms=3000,
    )
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    ends = consumer.end_offsets(tps)
    if group is None:
        consumer.seek_to_beginning(*tps)
    else:
        committed = {}
        for tp in tps:
            offset = consumer.committed(tp)
            committed[tp.partition] = offset
            if offset is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
        print(json.dumps({"committed": committed}))
    remaining = {tp for tp in tps if consumer.position(tp) < ends[tp]}
    while remaining:
        batch = consumer.poll(timeout_ms=3000)
        if not batch:
            break
        for tp, messages in batch.items():
            for m in messages:
                print(json.dumps({
                    "partition": m.partition,
                    "offset": m.offset,
                    "timestamp": m.timestamp,
                    "timestamp_type": m.timestamp_type,
                    "key": b64(m.key),
                    "value": b64(m.value),
                    "headers": [[k, b64(v)] for k, v in (m.headers or [])],
                }))
            if consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
    consumer.close()


if __name__ == "__main__":
    main()
