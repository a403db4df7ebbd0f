"""Prints a Kafka topic's configs as one JSON object {key: value}, read with kafka-python's
admin client (DescribeConfigs). Arguments: BOOTSTRAP TOPIC."""

import json
import sys

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    configs = described["topic"][topic]
    print(json.dumps({key: entry["value"] for key, entry in configs.items()}))
    admin.close()


if __name__ == "__main__":
    main()
