"""What runs at deploy time: CloudFormation custom resources (Kafka topics, migrations)."""
